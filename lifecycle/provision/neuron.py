"""Trainium workers: the shared Neuron compile cache, the job environment and the venv on FSx.

The venv lives on FSx, so the first worker to take the lock installs it and the
others find the stamp and skip. The stamp holds a digest of everything installed,
so changing a pin (or the training package's pyproject) reinstalls on the next run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from provision.apt import ensure_packages
from provision.config import NEURON_PIP_INDEX
from provision.context import Context
from provision.files import sync_tree

SYSTEM_PYTHON = "/usr/bin/python3"
PROFILE_SCRIPT = "/etc/profile.d/hyperpod-neuron.sh"


def neuron_compile_cache(ctx: Context) -> None:
    # Sticky and world-writable like /tmp: every user's jobs share compiled graphs.
    ctx.host.mkdir(ctx.params.neuron_compile_cache, 0o1777)


def env_script(ctx: Context) -> str:
    cache = ctx.params.neuron_compile_cache
    return f"""\
# Environment every Neuron job on this cluster needs. Written by the HyperPod lifecycle
# scripts; jobs source it (`source {ctx.params.neuron_venv}/neuron_env.sh`). Values already
# set in the environment win, so a job can override any of them.
export NEURON_VENV="${{NEURON_VENV:-{ctx.params.neuron_venv}}}"
export NEURON_COMPILE_CACHE_URL="${{NEURON_COMPILE_CACHE_URL:-{cache}}}"
export NEURON_CC_FLAGS="${{NEURON_CC_FLAGS:---model-type=transformer --distribution-strategy=llm-training --cache_dir={cache}}}"
export NEURON_FUSE_SOFTMAX="${{NEURON_FUSE_SOFTMAX:-1}}"
export NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS="${{NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS:-3}}"
export MALLOC_ARENA_MAX="${{MALLOC_ARENA_MAX:-64}}"
export FI_PROVIDER="${{FI_PROVIDER:-efa}}"
export FI_EFA_USE_DEVICE_RDMA="${{FI_EFA_USE_DEVICE_RDMA:-1}}"
export FI_EFA_FORK_SAFE="${{FI_EFA_FORK_SAFE:-1}}"
"""


def neuron_env(ctx: Context) -> None:
    env = f"{ctx.params.neuron_venv}/neuron_env.sh"
    ctx.host.write(env, env_script(ctx))
    ctx.host.write(PROFILE_SCRIPT, f"# Neuron job environment for login shells.\n[ -r {env} ] && . {env}\n")


def requirements(ctx: Context) -> str:
    return f"optimum-neuron[neuronx,training]=={ctx.params.optimum_neuron_version}\n"


def constraints(ctx: Context) -> str:
    return "\n".join(ctx.params.neuron_pins) + "\n"


def project_source(ctx: Context) -> Path | None:
    """The training package shipped next to the lifecycle scripts (lifecycle/project/), if any."""
    src = ctx.settings.bundle_dir / "project"
    return src if (src / "pyproject.toml").is_file() else None


def venv_digest(ctx: Context) -> str:
    h = hashlib.sha256((requirements(ctx) + constraints(ctx) + NEURON_PIP_INDEX).encode())
    pyproject = ctx.host.read(f"{ctx.params.project_dir}/pyproject.toml")
    if pyproject is not None:
        h.update(pyproject.encode())
    return h.hexdigest()


def neuron_venv(ctx: Context) -> None:
    venv, project = ctx.params.neuron_venv, ctx.params.project_dir
    run = ctx.host.runner.run
    ensure_packages(ctx.host.runner, ["python3-venv"])
    with ctx.host.lock(f"{ctx.params.fsx_mount_point}/.provision/neuron-venv.lock"):
        src = project_source(ctx)
        if src is not None:
            sync_tree(ctx.host, src, project)
        stamp = f"{venv}/.provisioned"
        digest = venv_digest(ctx)
        if (ctx.host.read(stamp) or "").strip() == digest:
            print(f"{venv} is up to date", flush=True)
            return
        ctx.host.write(f"{venv}/requirements.txt", requirements(ctx))
        ctx.host.write(f"{venv}/constraints.txt", constraints(ctx))
        if not ctx.host.exists(f"{venv}/bin/python"):
            run([SYSTEM_PYTHON, "-m", "venv", str(ctx.host.path(venv))])
        pip = [str(ctx.host.path(f"{venv}/bin/pip")), "install", "--no-input", "--extra-index-url", NEURON_PIP_INDEX]
        pins = ["-c", str(ctx.host.path(f"{venv}/constraints.txt"))]
        run([*pip, "-r", str(ctx.host.path(f"{venv}/requirements.txt")), *pins])
        if ctx.host.exists(f"{project}/pyproject.toml"):
            run([*pip, *pins, "-e", f"{ctx.host.path(project)}[training]"])
        else:
            print(
                f"WARNING: no training package at {project}: copy the repository there and run "
                f"{ctx.params.neuron_venv}/bin/pip install -c {venv}/constraints.txt -e '{project}[training]'",
                flush=True,
            )
        ctx.host.chown(venv, ctx.params.default_user, recursive=True)
        ctx.host.write(stamp, digest + "\n")

"""Trainium workers: the shared Neuron compile cache, the job environment and the venv on FSx.

The venv lives on FSx, so the first worker to take the lock installs it and the
others find the stamp and skip. The stamp holds a digest of everything installed and
of the interpreter, so changing a pin, the training package's pyproject or the image's
Python reinstalls on the next run.

Where the venv is built: here, at node creation, because the cluster is then ready to
train when CreateCluster ends; AWS's optimum-neuron recipe builds it in a Slurm job
instead (3.test_cases/pytorch/optimum-neuron/llama3/slurm/fine-tuning/submit_jobs/
0_create_env.sh in aws-samples/awsome-distributed-training), and `jobs/submit env`
stays as the resubmittable way to refresh it. What made the lifecycle build risky is
bounded here: torch is the CPU build (the Neuron stack needs no CUDA; PyPI's default
torch wheel pulls 14 CUDA wheels and triton, over 4 GB), pip retries a flaky registry
and the whole install is attempted three times, and the other workers wait for the
lock at most VENV_LOCK_TIMEOUT_S.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from provision.apt import ensure_packages
from provision.config import NEURON_PIP_INDEX
from provision.context import Context
from provision.files import sync_tree
from provision.host import StepError

PROFILE_SCRIPT = "/etc/profile.d/hyperpod-neuron.sh"
# optimum-neuron 0.4.5's Requires-Python is ">=3.10,<3.12" (its wheel's METADATA)
SUPPORTED_PYTHONS = ("python3.11", "python3.10")
SYSTEM_PYTHON = "/usr/bin/python3"
# torch's CPU builds (torch==2.8.0+cpu satisfies torch-neuronx's torch==2.8.0.*)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_BUILDS = {"torch": "+cpu", "torchvision": "+cpu"}
VENV_LOCK_TIMEOUT_S = 1800.0
INSTALL_ATTEMPTS = 3



def pip_conf() -> str:
    """The venv's own pip configuration ($VIRTUAL_ENV/pip.conf), read by every pip run in it: this
    lifecycle step's and the resubmittable env job's (jobs/env.sbatch) alike."""
    return f"""\
# Written by the HyperPod lifecycle scripts (lifecycle/provision/neuron.py).
[global]
extra-index-url =
    {NEURON_PIP_INDEX}
    {TORCH_CPU_INDEX}
retries = 10
timeout = 60
no-input = true
"""


def neuron_compile_cache(ctx: Context) -> None:
    # Sticky and world-writable like /tmp: every user's jobs share compiled graphs.
    ctx.host.mkdir(ctx.params.neuron_compile_cache, 0o1777)


def env_script(ctx: Context) -> str:
    """The cluster's values; every Neuron variable itself has one home, the project's jobs/lib/neuron_env.sh."""
    return f"""\
# Neuron job environment for this cluster. Written by the HyperPod lifecycle scripts for login
# shells; jobs source the project's jobs/lib/neuron_env.sh themselves. Values already set win.
export NEURON_VENV="${{NEURON_VENV:-{ctx.params.neuron_venv}}}"
export NEURON_CACHE_DIR="${{NEURON_CACHE_DIR:-{ctx.params.neuron_compile_cache}}}"
[ -r {ctx.params.project_dir}/jobs/lib/neuron_env.sh ] && . {ctx.params.project_dir}/jobs/lib/neuron_env.sh
"""


def neuron_env(ctx: Context) -> None:
    env = f"{ctx.params.neuron_venv}/neuron_env.sh"
    ctx.host.write(env, env_script(ctx))
    ctx.host.write(PROFILE_SCRIPT, f"# Neuron job environment for login shells.\n[ -r {env} ] && . {env}\n")


def requirements(ctx: Context) -> str:
    return f"optimum-neuron[neuronx,training]=={ctx.params.optimum_neuron_version}\n"


def cpu_build(pin: str) -> str:
    """`torch==2.8.0.*` -> `torch==2.8.0+cpu`: the CPU wheel, not PyPI's CUDA one."""
    name, _, version = pin.partition("==")
    suffix = CPU_BUILDS.get(name.strip())
    if suffix is None:
        return pin
    release = version.strip().rstrip("*").rstrip(".")
    return f"{name}=={release}{suffix}"


def constraints(ctx: Context) -> str:
    return "\n".join(cpu_build(p) for p in ctx.params.neuron_pins) + "\n"


def project_source(ctx: Context) -> Path | None:
    """The training package shipped next to the lifecycle scripts (lifecycle/project/), if any."""
    src = ctx.settings.bundle_dir / "project"
    return src if (src / "pyproject.toml").is_file() else None


def choose_python(ctx: Context) -> str:
    """An interpreter optimum-neuron supports, or StepError naming the image's Python."""
    for name in SUPPORTED_PYTHONS:
        if ctx.host.path(f"/usr/bin/{name}").exists():
            return f"/usr/bin/{name}"
    found = interpreter_name(ctx, SYSTEM_PYTHON) if ctx.host.path(SYSTEM_PYTHON).exists() else "missing"
    if found in SUPPORTED_PYTHONS:
        return SYSTEM_PYTHON
    raise StepError(
        f"optimum-neuron {ctx.params.optimum_neuron_version} needs Python >=3.10,<3.12, but this image's "
        f"{SYSTEM_PYTHON} is {found} and it has no /usr/bin/python3.11 or /usr/bin/python3.10; use a "
        "HyperPod image with Python 3.10 or 3.11 (Ubuntu 22.04), or install one (python3.10-venv from the "
        "deadsnakes PPA, as AWS's optimum-neuron recipe does) before this step"
    )


def interpreter_name(ctx: Context, python: str) -> str:
    """python3.10 for /usr/bin/python3 when that links to python3.10."""
    return ctx.host.path(python).resolve().name


def venv_digest(ctx: Context, python: str) -> str:
    interpreter = f"{python} -> {interpreter_name(ctx, python)}\n"
    h = hashlib.sha256((interpreter + requirements(ctx) + constraints(ctx) + pip_conf()).encode())
    pyproject = ctx.host.read(f"{ctx.params.project_dir}/pyproject.toml")
    if pyproject is not None:
        h.update(pyproject.encode())
    return h.hexdigest()


def venv_runs_on(ctx: Context, python: str) -> bool:
    """Whether the venv exists and was made by `python`'s version (an image update can change or remove it)."""
    venv = ctx.params.neuron_venv
    cfg = ctx.host.read(f"{venv}/pyvenv.cfg") or ""
    want = interpreter_name(ctx, python)[len("python"):]
    versions = [line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("version")]
    return ctx.host.path(f"{venv}/bin/python").exists() and any(
        v == want or v.startswith(want + ".") for v in versions)


def _pip(ctx: Context) -> list[str]:
    venv = ctx.params.neuron_venv
    return [str(ctx.host.path(f"{venv}/bin/pip")), "install", "-c", str(ctx.host.path(f"{venv}/constraints.txt"))]


def _install(ctx: Context) -> str | None:
    """One attempt at the whole install; the reason it failed, or None."""
    venv, project = ctx.params.neuron_venv, ctx.params.project_dir
    run = ctx.host.runner.run
    for argv in ([*_pip(ctx), "-r", str(ctx.host.path(f"{venv}/requirements.txt"))],
                 [*_pip(ctx), "-e", f"{ctx.host.path(project)}[training]"]):
        if "-e" in argv and not ctx.host.exists(f"{project}/pyproject.toml"):
            print(
                f"WARNING: no training package at {project}: copy the repository there and run "
                f"{venv}/bin/pip install -c {venv}/constraints.txt -e '{project}[training]'",
                flush=True,
            )
            continue
        result = run(argv, check=False)
        if not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return lines[-1] if lines else f"pip exited {result.returncode}"
    return None


def neuron_venv(ctx: Context) -> None:
    venv = ctx.params.neuron_venv
    python = choose_python(ctx)
    ensure_packages(ctx.host.runner, [f"{interpreter_name(ctx, python)}-venv"])
    with ctx.host.lock(f"{ctx.params.fsx_mount_point}/.provision/neuron-venv.lock", timeout=VENV_LOCK_TIMEOUT_S):
        src = project_source(ctx)
        if src is not None:
            sync_tree(ctx.host, src, ctx.params.project_dir)
        stamp = f"{venv}/.provisioned"
        digest = venv_digest(ctx, python)
        if (ctx.host.read(stamp) or "").strip() == digest:
            print(f"{venv} is up to date", flush=True)
            return
        if not venv_runs_on(ctx, python):  # --clear empties the directory, so the files come after
            ctx.host.runner.run([python, "-m", "venv", "--clear", str(ctx.host.path(venv))])
        ctx.host.write(f"{venv}/requirements.txt", requirements(ctx))
        ctx.host.write(f"{venv}/constraints.txt", constraints(ctx))
        ctx.host.write(f"{venv}/pip.conf", pip_conf())
        ctx.host.retry(f"installing the Neuron venv {venv}", INSTALL_ATTEMPTS, lambda: _install(ctx))
        ctx.host.chown(venv, ctx.params.default_user, recursive=True)
        ctx.host.write(stamp, digest + "\n")

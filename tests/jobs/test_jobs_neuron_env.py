"""The Neuron job environment (jobs/lib/neuron_env.sh, its one home) and the layout chosen per node,
checked by sourcing the real common.sh in bash (no daemons)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs_helpers import JOBS
from test_jobs_common import source_common, values

NEURON_LS_TRN2 = """\
+--------+--------+--------+-----------+
| NEURON | NEURON | NEURON | CONNECTED |
| DEVICE | CORES  | MEMORY |  DEVICES  |
+--------+--------+--------+-----------+
""" + "".join(f"| {d}      | 4      | 96 GB  | 1, 3      |\n" for d in range(16)) + \
    "+--------+--------+--------+-----------+\n"


def fake_neuron_ls(tmp_path: Path, table: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "neuron-ls"
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{table}EOF\n")
    tool.chmod(0o755)
    return f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"


def test_compiler_flags_retry_a_graph_that_failed_before(tmp_path: Path) -> None:
    flags = values(tmp_path, "NEURON_CC_FLAGS", BACKEND="neuron")["NEURON_CC_FLAGS"].split()
    assert "--retry_failed_compilation" in flags
    user = values(tmp_path, "NEURON_CC_FLAGS", BACKEND="neuron", NEURON_CC_FLAGS="--target=trn1")
    assert user["NEURON_CC_FLAGS"].split()[:2] == ["--target=trn1", "--retry_failed_compilation"]


def test_a_users_cache_dir_places_the_compile_cache(tmp_path: Path) -> None:
    got = values(tmp_path, "NEURON_COMPILE_CACHE_URL", "NEURON_CC_FLAGS", BACKEND="neuron",
                 NEURON_CACHE_DIR="/fsx/ubuntu/my-cache")
    assert got["NEURON_COMPILE_CACHE_URL"] == "/fsx/ubuntu/my-cache"
    assert "--cache_dir=/fsx/ubuntu/my-cache" in got["NEURON_CC_FLAGS"]


def test_the_clusters_env_file_for_login_shells_keeps_a_users_cache_dir(tmp_path: Path) -> None:
    # what the lifecycle writes ($NEURON_VENV/neuron_env.sh), pointing at this checkout's jobs/
    cluster_env = tmp_path / "neuron_env.sh"
    cluster_env.write_text(f'export NEURON_CACHE_DIR="${{NEURON_CACHE_DIR:-/fsx/neuron-cache}}"\n'
                           f". {JOBS}/lib/neuron_env.sh\n")
    script = f'. {cluster_env}; echo "$NEURON_COMPILE_CACHE_URL|$NEURON_CC_FLAGS"'
    mine = subprocess.run(["sh", "-c", script], env={"NEURON_CACHE_DIR": "/mine"}, text=True,
                          capture_output=True, check=True).stdout.strip()
    default = subprocess.run(["sh", "-c", script], env={}, text=True, capture_output=True, check=True).stdout
    assert mine.startswith("/mine|") and "--cache_dir=/mine" in mine
    assert default.startswith("/fsx/neuron-cache|")


def test_a_trn2_node_runs_64_processes_at_tensor_parallel_4(tmp_path: Path) -> None:
    got = values(tmp_path, "NEURON_CORES_PER_NODE", "PROCS_PER_NODE", "TP_SIZE", BACKEND="neuron",
                 PATH=fake_neuron_ls(tmp_path, NEURON_LS_TRN2))
    assert got == {"NEURON_CORES_PER_NODE": "64", "PROCS_PER_NODE": "64", "TP_SIZE": "4"}


def test_a_trn1_node_without_neuron_ls_keeps_32_processes_at_tensor_parallel_8(tmp_path: Path) -> None:
    got = values(tmp_path, "PROCS_PER_NODE", "TP_SIZE", BACKEND="neuron")
    assert got == {"PROCS_PER_NODE": "32", "TP_SIZE": "8"}


def test_a_node_of_unknown_core_count_asks_for_tp_size(tmp_path: Path) -> None:
    table = "| 0      | 6      | 32 GB  | 1         |\n"
    result = source_common(tmp_path, "echo $TP_SIZE", BACKEND="neuron", PATH=fake_neuron_ls(tmp_path, table))
    assert result.returncode != 0
    assert "no tensor-parallel size known for a node with 6 NeuronCores; set TP_SIZE" in result.stderr
    got = values(tmp_path, "TP_SIZE", BACKEND="neuron", TP_SIZE="2", NEURON_CORES_PER_NODE="6")
    assert got == {"TP_SIZE": "2"}


def fake_tools(tmp_path: Path, python_version: str) -> str:
    """srun that runs its command here, and an image whose only python3 is `python_version`."""
    bin_dir = tmp_path / "tools"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\ncase "$1" in -V) echo "Python {python_version}" ;; '
        f'-c) exit {0 if python_version.startswith(("3.10", "3.11")) else 1} ;; *) exit 1 ;; esac\n')
    for other in ("python3.11", "python3.10"):  # this machine's own must not be found
        (bin_dir / other).write_text("#!/bin/sh\nexit 1\n")
    for tool in ("srun", "python3", "python3.11", "python3.10"):
        (bin_dir / tool).chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def run_env_job(tmp_path: Path, venv: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(tmp_path), "JOBS_DIR": str(JOBS), "BACKEND": "neuron",
           "NEURON_CORES_PER_NODE": "32", "VENV_DIR": str(venv), "ENV_INSTALL": "1", "FSX_ROOT": str(tmp_path)}
    return subprocess.run(["bash", str(JOBS / "env.sbatch")], env=env, cwd=tmp_path, text=True,
                          capture_output=True, check=False)


def test_the_env_job_refuses_a_neuron_venv_without_the_lifecycles_pins(tmp_path: Path) -> None:
    result = run_env_job(tmp_path, tmp_path / "venv", fake_tools(tmp_path, "3.10.12"))
    assert result.returncode != 0
    assert "pip.conf is missing: the Neuron venv's pins and indexes come from the lifecycle" in result.stderr


def test_the_env_job_names_the_images_python_when_none_fits(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pip.conf").write_text("[global]\n")
    result = run_env_job(tmp_path, venv, fake_tools(tmp_path, "3.12.3"))
    assert result.returncode != 0
    assert "needs Python >=3.10,<3.12; this node's python3 is Python 3.12.3" in result.stderr
    assert not (venv / "bin").exists()

"""jobs/lib/common.sh and the templates' conventions, checked by sourcing the real files in bash (no daemons)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from jobs_helpers import JOBS, ROOT

TEMPLATES = sorted(JOBS.glob("*.sbatch"))


def source_common(tmp_path: Path, print_cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Source common.sh in a clean bash with `env`, then run `print_cmd`."""
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(tmp_path),
        "NEURON_DEVICE": str(tmp_path / "no-neuron0"),
        "HYPERPOD_MARKER": str(tmp_path / "no-sagemaker_cluster"),
        "FSX_ROOT": str(tmp_path / "fsx"),
    }
    script = f"set -euo pipefail; source {shlex.quote(str(JOBS / 'lib' / 'common.sh'))}; {print_cmd}"
    return subprocess.run(["bash", "-c", script], env={**base, **env}, cwd=tmp_path, text=True,
                          capture_output=True, check=False)


def values(tmp_path: Path, *names: str, **env: str) -> dict[str, str]:
    result = source_common(tmp_path, " ".join(f'echo "{n}=${{{n}:-}}";' for n in names), **env)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_backend_auto_is_cpu_on_a_machine_without_neuron_devices(tmp_path: Path) -> None:
    got = values(tmp_path, "BACKEND", "PROCS_PER_NODE", "MODEL_SOURCE")
    assert got == {"BACKEND": "cpu", "PROCS_PER_NODE": "1", "MODEL_SOURCE": "tiny"}


def test_backend_auto_is_neuron_with_32_processes_per_node_where_a_neuron_device_exists(tmp_path: Path) -> None:
    device = tmp_path / "neuron0"
    device.touch()
    got = values(tmp_path, "BACKEND", "PROCS_PER_NODE", "MODEL_SOURCE", NEURON_DEVICE=str(device))
    assert got == {"BACKEND": "neuron", "PROCS_PER_NODE": "32", "MODEL_SOURCE": "hub"}


def test_neuron_backend_sets_efa_variables_and_the_shared_compile_cache(tmp_path: Path) -> None:
    got = values(tmp_path, "FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA", "FI_EFA_FORK_SAFE", "NEURON_CC_FLAGS",
                 "NEURON_COMPILE_CACHE_URL", "MALLOC_ARENA_MAX", BACKEND="neuron")
    cache = f"{tmp_path}/fsx/neuron-cache"
    assert got["FI_PROVIDER"] == "efa"
    assert got["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert got["FI_EFA_FORK_SAFE"] == "1"
    assert f"--cache_dir={cache}" in got["NEURON_CC_FLAGS"]
    assert got["NEURON_COMPILE_CACHE_URL"] == cache
    assert got["MALLOC_ARENA_MAX"]


def test_cpu_backend_sets_no_efa_variables(tmp_path: Path) -> None:
    got = values(tmp_path, "FI_PROVIDER", "NEURON_CC_FLAGS", BACKEND="cpu")
    assert got == {"FI_PROVIDER": "", "NEURON_CC_FLAGS": ""}


def test_an_unknown_backend_fails_naming_the_variable(tmp_path: Path) -> None:
    result = source_common(tmp_path, "echo sourced", BACKEND="tpu")
    assert result.returncode != 0
    assert "BACKEND must be auto, neuron, cuda or cpu" in result.stderr


def test_srun_gets_auto_resume_on_hyperpod(tmp_path: Path) -> None:
    marker = tmp_path / "sagemaker_cluster"
    marker.mkdir()
    result = source_common(tmp_path, 'echo "${SRUN_ARGS[*]}"', HYPERPOD_MARKER=str(marker))
    assert result.stdout.split() == ["--kill-on-bad-exit=1", "--auto-resume=1"]


def test_srun_has_no_auto_resume_elsewhere(tmp_path: Path) -> None:
    result = source_common(tmp_path, 'echo "${SRUN_ARGS[*]}"')
    assert result.stdout.split() == ["--kill-on-bad-exit=1"]


def test_every_path_lives_under_fsx_root(tmp_path: Path) -> None:
    names = ("VENV_DIR", "MODEL_DIR", "DATASET_PATH", "RUN_DIR", "LOG_DIR", "OUTPUT_DIR", "COMPILE_DIR",
             "ADAPTER_DIR", "MERGED_DIR", "NEURON_CACHE_DIR")
    got = values(tmp_path, *names)
    assert all(got[n].startswith(f"{tmp_path}/fsx/") for n in names), got


def test_torchrun_spans_the_allocation_with_the_first_host_as_master(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"  # scontrol expands host lists offline, given any config
    conf.write_text("ClusterName=offline\nSlurmctldHost=localhost\n")
    result = source_common(tmp_path, 'echo "${TORCHRUN_ARGS[*]}"', SLURM_CONF=str(conf), SLURM_JOB_ID="7",
                           SLURM_JOB_NUM_NODES="3", SLURM_JOB_NODELIST="ip-10-1-[7,9],ip-10-2-3",
                           BACKEND="neuron")
    assert result.returncode == 0, result.stderr
    args = result.stdout.split()
    assert args[args.index("--nnodes") + 1] == "3"
    assert args[args.index("--nproc_per_node") + 1] == "32"
    assert args[args.index("--master_addr") + 1] == "ip-10-1-7"


def test_compile_pass_runs_the_training_command_under_neuron_parallel_compile(tmp_path: Path) -> None:
    # neuron_parallel_compile cannot run without Neuron; this stand-in records the command it was given
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "neuron_parallel_compile").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$0" "$@"\n')
    (bin_dir / "neuron_parallel_compile").chmod(0o755)
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=offline\nSlurmctldHost=localhost\n")
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "FSX_ROOT": str(tmp_path / "fsx"),
        "JOBS_DIR": str(JOBS), "BACKEND": "neuron", "NEURON_EXTRACT_GRAPHS_ONLY": "1", "SLURM_CONF": str(conf),
        "SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NODEID": "1",
        "HYPERPOD_MARKER": str(tmp_path / "none"),
    }
    result = subprocess.run(["bash", str(JOBS / "lib" / "finetune.sh")], env=env, text=True, capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    stub = str(bin_dir / "neuron_parallel_compile")
    assert stub in lines, result.stdout
    argv = lines[lines.index(stub) + 1:]
    assert argv[0] == "torchrun"
    assert argv[argv.index("--node_rank") + 1] == "1"
    assert argv[argv.index("-m") + 1] == "training.finetune"
    assert argv[argv.index("--output_dir") + 1] == f"{tmp_path}/fsx/runs/llama3-8b-lora/compile"
    assert argv[argv.index("--max_steps") + 1] == "10"
    assert argv[argv.index("--tensor_parallel_size") + 1] == "8"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_follows_the_house_layout(template: Path) -> None:
    lines = template.read_text().splitlines()
    sbatch = [line for line in lines if line.startswith("#SBATCH")]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert any(re.match(r"#SBATCH --output=logs/%x-%j\.out\s", line) for line in sbatch)
    assert all(re.match(r"#SBATCH --[a-z-]+(=\S+)?\s+# \S", line) for line in sbatch), sbatch
    assert any("lib/common.sh" in line and line.startswith("source ") for line in lines)


def test_templates_hold_no_token_and_no_fixed_checkpoint() -> None:
    for template in TEMPLATES:
        text = template.read_text()
        assert not re.search(r"hf_[A-Za-z0-9]{10,}", text), template
        assert not re.search(r"checkpoint-\d+", text), template
        assert "/fsx/ubuntu" not in text, template


def test_submit_refuses_an_unknown_step() -> None:
    result = subprocess.run([str(JOBS / "submit"), "pretrain"], cwd=ROOT, text=True, capture_output=True,
                            check=False)
    assert result.returncode == 2
    assert "unknown step 'pretrain'" in result.stderr


def test_submit_leaves_the_backend_to_be_resolved_on_the_compute_nodes(tmp_path: Path) -> None:
    # The head node has no Neuron device; what it resolved must not reach the trn1 jobs.
    # This stand-in for sbatch records the environment each job would be submitted with.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/usr/bin/env bash\nenv > "$ENV_RECORD"\necho 42\n')
    (bin_dir / "sbatch").chmod(0o755)
    record = tmp_path / "job.env"
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "ENV_RECORD": str(record),
           "FSX_ROOT": str(tmp_path / "fsx"), "NEURON_DEVICE": str(tmp_path / "absent")}
    result = subprocess.run([str(JOBS / "submit"), "train"], env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    names = {line.split("=", 1)[0] for line in record.read_text().splitlines()}
    assert names & {"BACKEND", "MODEL_SOURCE", "PROCS_PER_NODE", "FI_PROVIDER"} == set()
    assert "JOBS_DIR" in names

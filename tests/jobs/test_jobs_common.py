"""jobs/lib/common.sh and the templates' conventions, checked by sourcing the real files in bash (no daemons)."""

from __future__ import annotations

import os
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
    got = values(tmp_path, "BACKEND", "PROCS_PER_NODE")
    assert got == {"BACKEND": "cpu", "PROCS_PER_NODE": "1"}


def test_the_model_comes_from_the_hub_unless_the_tiny_one_is_asked_for_by_name(tmp_path: Path) -> None:
    assert values(tmp_path, "MODEL_SOURCE", BACKEND="cpu") == {"MODEL_SOURCE": "hub"}
    assert values(tmp_path, "MODEL_SOURCE", BACKEND="cpu", MODEL_SOURCE="tiny") == {"MODEL_SOURCE": "tiny"}


def test_backend_auto_without_neuron_devices_in_a_cluster_of_trainium_workers_is_an_error(tmp_path: Path) -> None:
    # A 1-node step on a login node (HyperPod's default partition holds them) must not fall back
    # to the CPU: the lifecycle's Neuron job environment on FSx says the workers have Neuron devices.
    venv = tmp_path / "fsx" / "envs" / "neuron"
    venv.mkdir(parents=True)
    (venv / "neuron_env.sh").write_text("export NEURON_FUSE_SOFTMAX=1\n")
    result = source_common(tmp_path, "echo sourced")
    assert result.returncode != 0 and "sourced" not in result.stdout
    assert "no Neuron device" in result.stderr and "submit to the worker partition (PARTITION)" in result.stderr
    assert values(tmp_path, "BACKEND", BACKEND="cpu") == {"BACKEND": "cpu"}  # asked for by name: allowed


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


def test_every_output_of_a_run_lies_under_the_path_exported_to_s3(tmp_path: Path) -> None:
    from infra.storage import FSX_LINKED_PATH  # the data repository association's FSx path

    names = ("RUN_DIR", "LOG_DIR", "OUTPUT_DIR", "COMPILE_DIR", "ADAPTER_DIR", "MERGED_DIR", "DATASET_PATH")
    got = values(tmp_path, *names)
    exported = f"{tmp_path}/fsx{FSX_LINKED_PATH}/"
    assert {n: got[n] for n in names if not got[n].startswith(exported)} == {}


def test_every_default_location_is_in_the_tree_the_lifecycle_prepares_for_the_user(tmp_path: Path) -> None:
    from provision.shared_tree import EXPORTED_DIR, USER_DIRS

    from infra.storage import FSX_LINKED_PATH

    assert f"/{EXPORTED_DIR}" == FSX_LINKED_PATH
    got = values(tmp_path, "VENV_DIR", "MODEL_DIR", "DATASET_PATH", "RUN_DIR")
    prepared = [f"{tmp_path}/fsx/{d}/" for d in USER_DIRS]
    assert {n: v for n, v in got.items() if not any(v.startswith(p) for p in prepared)} == {}


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
    assert argv[argv.index("--output_dir") + 1] == f"{tmp_path}/fsx/s3/runs/llama3-8b-lora/compile"
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
    assert result.stderr.splitlines() == [
        "error: unknown step 'pretrain'; steps: env download compile train consolidate merge evaluate generate report"]


def test_submit_help_exits_0_and_names_its_settings() -> None:
    result = subprocess.run([str(JOBS / "submit"), "--help"], cwd=ROOT, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: jobs/submit [--wait] [STEP...]")
    for setting in ("JOBS_ALLOW_ROOT=", "NODES=", "PARTITION=", "RUN_NAME", "FSX_ROOT", "AFTER=", "POLL_S=", "SUBMIT_TIMEOUT_S=", "--wait"):
        assert setting in result.stdout


def fake_slurm(tmp_path: Path, partitions: str) -> dict[str, str]:
    """sbatch and scontrol stand-ins: sbatch records its arguments, scontrol shows `partitions`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/usr/bin/env bash\necho "$*" >> "$SBATCH_RECORD"\necho $((40 + $(wc -l < "$SBATCH_RECORD")))\n')
    (bin_dir / "scontrol").write_text(f"#!/usr/bin/env bash\ncat <<'OUT'\n{partitions}OUT\n")
    for tool in ("sbatch", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
            "SBATCH_RECORD": str(tmp_path / "sbatch.args"), "FSX_ROOT": str(tmp_path / "fsx"), "JOBS_ALLOW_ROOT": "1"}


# `scontrol show partition -o` of a HyperPod cluster with a login group (fields trimmed)
HYPERPOD_PARTITIONS = ("PartitionName=dev AllowGroups=ALL Default=YES Nodes=ip-10-1-0-20,ip-10-1-1-[31-32] State=UP\n"
                       "PartitionName=trn1 AllowGroups=ALL Default=NO Nodes=ip-10-1-1-[31-32] State=UP\n")


def test_submit_sends_every_step_to_the_worker_partition_not_the_default_one(tmp_path: Path) -> None:
    env = fake_slurm(tmp_path, HYPERPOD_PARTITIONS)
    result = subprocess.run([str(JOBS / "submit"), "download", "train"], env=env, text=True, capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "sbatch.args").read_text().splitlines()
    assert len(calls) == 2 and all("--partition=trn1" in call.split() for call in calls)


def test_submit_asks_which_partition_when_there_are_several_worker_partitions(tmp_path: Path) -> None:
    env = fake_slurm(tmp_path, HYPERPOD_PARTITIONS + "PartitionName=cpu Default=NO Nodes=ip-10-1-2-1 State=UP\n")
    result = subprocess.run([str(JOBS / "submit"), "train"], env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: the cluster has several worker partitions (trn1 cpu): set PARTITION to one of them"]
    assert not (tmp_path / "sbatch.args").exists() and not (tmp_path / "fsx").exists()


@pytest.mark.parametrize("nodes", ["0", "-1", "abc", "2.5"])
def test_submit_refuses_a_node_count_that_is_not_a_positive_number_and_creates_nothing(
        tmp_path: Path, nodes: str) -> None:
    env = {**fake_slurm(tmp_path, HYPERPOD_PARTITIONS), "NODES": nodes}
    result = subprocess.run([str(JOBS / "submit"), "train"], env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: NODES must be a positive whole number of nodes, got '{nodes}'"]
    assert not (tmp_path / "sbatch.args").exists() and not (tmp_path / "fsx").exists()


def test_submit_leaves_the_backend_to_be_resolved_on_the_compute_nodes(tmp_path: Path) -> None:
    # The head node has no Neuron device; what it resolved must not reach the trn1 jobs.
    # This stand-in for sbatch records the environment each job would be submitted with.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/usr/bin/env bash\nenv > "$ENV_RECORD"\necho 42\n')
    (bin_dir / "sbatch").chmod(0o755)
    record = tmp_path / "job.env"
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "ENV_RECORD": str(record),
           "FSX_ROOT": str(tmp_path / "fsx"), "NEURON_DEVICE": str(tmp_path / "absent"), "PARTITION": "trn1",
           "JOBS_ALLOW_ROOT": "1"}
    result = subprocess.run([str(JOBS / "submit"), "train"], env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    names = {line.split("=", 1)[0] for line in record.read_text().splitlines()}
    assert names & {"BACKEND", "MODEL_SOURCE", "PROCS_PER_NODE", "FI_PROVIDER"} == set()
    assert "JOBS_DIR" in names


def test_a_job_leaves_what_safetensors_wrote_0600_readable_as_the_umask_allows(tmp_path: Path) -> None:
    # safetensors >= 0.8 writes through a 0600 temp file whatever the umask (safetensors#782)
    adapter = tmp_path / "fsx" / "s3" / "runs" / "r" / "adapter"
    adapter.mkdir(parents=True)
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(b"\0")
    weights.chmod(0o600)
    result = source_common(tmp_path, "umask 022; job_start merge; exit 0", RUN_NAME="r")
    assert result.returncode == 0, result.stderr
    assert weights.stat().st_mode & 0o777 == 0o644


def test_a_private_umask_keeps_outputs_private(tmp_path: Path) -> None:
    run = tmp_path / "fsx" / "s3" / "runs" / "r"
    run.mkdir(parents=True)
    (run / "loss.png").write_bytes(b"\0")
    (run / "loss.png").chmod(0o600)
    result = source_common(tmp_path, "umask 077; job_start train; exit 1", RUN_NAME="r")
    assert result.returncode == 1
    assert (run / "loss.png").stat().st_mode & 0o777 == 0o600


def sbatch_options(template: Path) -> dict[str, str]:
    lines = template.read_text().splitlines()
    return dict((m.group(1), m.group(2) or "") for m in
                (re.match(r"#SBATCH --([a-z-]+)(?:=(\S+))?", line) for line in lines) if m)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_template_has_a_time_limit(template: Path) -> None:
    assert re.fullmatch(r"(\d+-)?\d{2}:\d{2}:\d{2}", sbatch_options(template).get("time", "")), template.name


@pytest.mark.parametrize("template", [t for t in TEMPLATES if sbatch_options(t).get("nodes") == "1"],
                         ids=lambda p: p.name)
def test_a_one_node_step_gets_the_whole_node_and_runs_a_thread_per_cpu(template: Path) -> None:
    # under select/cons_tres a 1-task job without --exclusive or --cpus-per-task gets one CPU
    options = sbatch_options(template)
    assert "exclusive" in options or "cpus-per-task" in options
    assert "\none_process_per_node\n" in template.read_text()


def test_one_process_per_node_runs_a_thread_per_cpu_of_the_allocation(tmp_path: Path) -> None:
    got = values(tmp_path, "OMP_NUM_THREADS", SLURM_CPUS_ON_NODE="48").get("OMP_NUM_THREADS")
    assert got == "1"  # torchrun steps: one per process
    result = source_common(tmp_path, 'one_process_per_node >/dev/null; echo "$OMP_NUM_THREADS"', SLURM_CPUS_ON_NODE="48")
    assert result.stdout.strip() == "48"
    result = source_common(tmp_path, 'one_process_per_node >/dev/null; echo "$OMP_NUM_THREADS"', SLURM_CPUS_ON_NODE="48",
                           OMP_NUM_THREADS="6")
    assert result.stdout.strip() == "6"  # the user's choice wins


@pytest.mark.parametrize("template", [JOBS / "compile.sbatch", JOBS / "train.sbatch"], ids=lambda p: p.name)
def test_a_step_that_is_started_again_appends_to_its_log(template: Path) -> None:
    # HyperPod's auto-resume and --requeue run the same job id again: its first attempt's log must stay
    assert sbatch_options(template).get("open-mode") == "append"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: submitting as root is what is refused")
def test_submit_refuses_to_submit_as_root(tmp_path: Path) -> None:
    env = {**fake_slurm(tmp_path, HYPERPOD_PARTITIONS), "JOBS_ALLOW_ROOT": "0"}
    result = subprocess.run([str(JOBS / "submit"), "train"], env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: run jobs/submit as the cluster's default user (ubuntu on HyperPod), not root "
        "(JOBS_ALLOW_ROOT=1 to submit as root anyway)"]
    assert not (tmp_path / "sbatch.args").exists() and not (tmp_path / "fsx").exists()

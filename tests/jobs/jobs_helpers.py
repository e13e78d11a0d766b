"""The local Slurm cluster as the job tests see it: run commands against it, submit chains, read outcomes."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"
LOCALSLURM = ROOT / "localslurm"
# The lifecycle's provision package (stdlib only), for the facts jobs and lifecycle share.
if str(ROOT / "lifecycle") not in sys.path:
    sys.path.insert(0, str(ROOT / "lifecycle"))

# The tests' own cluster, next to (not instead of) the one `make demo` uses.
TEST_CLUSTER_DIR = Path(os.environ.get("JOBS_TEST_CLUSTER_DIR", ROOT / ".state" / "localslurm" / "pytest"))
TEST_PORT_BASE = int(os.environ.get("JOBS_TEST_PORT_BASE", "16827"))

# The unprivileged user the cluster's jobs run as (localslurm/user.sh), as on HyperPod.
JOB_USER = os.environ.get("LOCALSLURM_USER") or ("ubuntu" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)
# The workers' partition of the local cluster; the default partition (dev) holds the login node too.
WORKER_PARTITION = "local"

# Few, quick steps: the chain is proven, not the model.
QUICK_TRAINING = {"MAX_STEPS": "12", "SAVE_STEPS": "4", "MAX_NEW_TOKENS": "8"}


def cluster_env(state_dir: Path = TEST_CLUSTER_DIR, port_base: int = TEST_PORT_BASE) -> dict[str, str]:
    """Environment for up.sh/down.sh and the Slurm clients: this state dir and these ports, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCALSLURM_"))}
    for name in ("FSX_ROOT", "RUN_NAME", "RUN_DIR", "MODEL_DIR", "DATASET_PATH", "BACKEND", "JOBS_DIR"):
        env.pop(name, None)
    env.update(
        LOCALSLURM_DIR=str(state_dir),
        LOCALSLURM_CTLD_PORT=str(port_base),
        LOCALSLURM_NODE1_PORT=str(port_base + 1),
        LOCALSLURM_NODE2_PORT=str(port_base + 2),
        SLURM_CONF=str(state_dir / "etc" / "slurm.conf"),
    )
    return env


def parse_jobcomp(text: str) -> dict[int, dict[str, str]]:
    """jobcomp/filetxt records by job id; a requeued job's last record wins."""
    records: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            records[int(fields["JobId"])] = fields
    return records


def parse_submitted(stdout: str) -> dict[str, int]:
    """{step: job id} from the `STEP JOBID` lines jobs/submit prints first."""
    ids: dict[str, int] = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z]+)\s+(\d+)\s*$", line)
        if m:
            ids[m.group(1)] = int(m.group(2))
    return ids


@dataclass(frozen=True)
class LocalCluster:
    state_dir: Path
    env: dict[str, str]

    @property
    def fsx(self) -> Path:
        return self.state_dir / "fsx"

    @property
    def datasets(self) -> Path:
        return self.fsx / "s3" / "datasets"

    def run_dir(self, run_name: str) -> Path:
        return self.fsx / "s3" / "runs" / run_name

    def run(self, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, env=self.env, cwd=ROOT, text=True, capture_output=True, timeout=timeout,
                              check=check)

    def submit(self, *steps: str, run_name: str, settings: dict[str, str] | None = None, wait: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """jobs/submit as the cluster's unprivileged user (localslurm/as-user.sh), with the local
        pipeline profile (localslurm/pipeline.sh) and `settings` on top."""
        env = {**self.env, "RUN_NAME": run_name, "POLL_S": "1", **(settings or {})}
        script = 'source localslurm/pipeline.sh && exec localslurm/as-user.sh jobs/submit "$@"'
        args = (["--wait"] if wait else []) + list(steps)
        return subprocess.run(["bash", "-c", script, "submit", *args], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def jobcomp(self) -> dict[int, dict[str, str]]:
        path = self.state_dir / "log" / "jobcomp.txt"
        return parse_jobcomp(path.read_text()) if path.exists() else {}

    def job(self, job_id: int) -> dict[str, str]:
        """The live record of a job (scontrol show job)."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def queued(self, job_ids: list[int]) -> list[str]:
        """`JOBID STATE` of those jobs that are still pending or running."""
        out = self.run("squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i %T",
                       "-j", ",".join(map(str, job_ids)), check=False).stdout
        return [line for line in out.splitlines() if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def logged_steps(metrics_path: Path) -> list[int]:
    """The optimizer steps that have a training-loss record in metrics.jsonl, in file order."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return [int(r["step"]) for r in rows if "loss" in r]

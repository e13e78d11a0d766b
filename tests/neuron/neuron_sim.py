"""Running the project's jobs and code as one rank of a simulated Trainium job (tests/neuron/sim)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIM = HERE / "sim"


@dataclass(frozen=True)
class Node:
    """A simulated trn1 node: its device file, its Neuron cache and a scratch area."""

    root: Path

    @property
    def device(self) -> Path:
        return self.root / "dev-neuron0"

    def env(self, rank: int, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON_", "RANK", "WORLD_SIZE", "LOCAL_"))}
        return {
            **base,
            "PATH": f"{HERE / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}:{SIM}",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "NEURON_DEVICE": str(self.device),
            "SIM_RANK": str(rank),
            **extra,
        }


def run_job_step(node: Node, rank: int, *, nodes: int, procs_per_node: int, tp: int, model: Path, data: Path,
                 output_dir: Path, extra_args: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """jobs/lib/finetune.sh as srun runs it on one node, its torchrun starting rank `rank` only."""
    job_env = node.env(
        rank,
        **{"NEURON_EXTRACT_GRAPHS_ONLY": "0", **env},
        JOBS_DIR=str(ROOT / "jobs"),
        FSX_ROOT=str(node.root / "fsx"),
        VENV_DIR=str(node.root / "no-venv"),
        BACKEND="neuron",
        NEURON_CORES_PER_NODE=str(procs_per_node),
        TP_SIZE=str(tp),
        MODEL_DIR=str(model),
        DATASET_PATH=str(data),
        OUTPUT_DIR=str(output_dir),
        TRAIN_EXTRA_ARGS=extra_args,
        SLURM_JOB_ID="4242",
        SLURM_NODEID=str(rank // procs_per_node),
        NNODES=str(nodes),
        MASTER_ADDR="127.0.0.1",
    )
    return subprocess.run(["bash", str(ROOT / "jobs" / "lib" / "finetune.sh")], env=job_env, cwd=node.root,
                          text=True, capture_output=True, timeout=240, check=False)


def run_python(node: Node, rank: int, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter as rank `rank` of a torchrun job."""
    return subprocess.run([sys.executable, "-c", code], env=node.env(rank, TORCHELASTIC_RUN_ID="check-neuron",
                                                                     RANK=str(rank), **env),
                          cwd=node.root, text=True, capture_output=True, timeout=240, check=False)

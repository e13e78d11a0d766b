"""Which backend trains: neuron (optimum-neuron on Trainium), cuda or cpu.

Nothing here imports torch or optimum.neuron at module level, so `--help` and the
CPU backend work on machines without Neuron.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from training.errors import UserError

BACKENDS = ("auto", "cpu", "cuda", "neuron")
# the same variable as jobs/lib/common.sh's, so a simulated node can name its device file
NEURON_DEVICE = Path(os.environ.get("NEURON_DEVICE", "/dev/neuron0"))


class BackendUnavailable(UserError):
    """The backend asked for cannot run on this machine."""


def has_neuron_devices() -> bool:
    return NEURON_DEVICE.exists()


def has_optimum_neuron() -> bool:
    try:
        return importlib.util.find_spec("optimum.neuron") is not None
    except ModuleNotFoundError:  # no `optimum` namespace at all
        return False


def is_compile_pass() -> bool:
    """True under neuron_parallel_compile, which runs the training command to extract graphs."""
    return os.environ.get("NEURON_EXTRACT_GRAPHS_ONLY", "0") not in ("", "0")


def global_rank() -> int:
    """This process's rank in the whole job, for deciding who does once-per-job work.

    Not the trainer's `is_world_process_zero()`: optimum-neuron 0.4.5 answers it with
    `args.process_index == 0`, and `process_index` is 0 on every rank when
    `distributed_state` is None, which it is with the default accelerator config
    (optimum/neuron/trainers/training_args.py, `_setup_devices` and `process_index`).
    torchrun sets RANK; torch.distributed knows it when something else started the group.
    """
    if os.environ.get("RANK", "").strip():
        return int(os.environ["RANK"])
    import sys

    dist = sys.modules.get("torch.distributed")  # only ask torch when it is loaded already
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return 0


def is_main_process() -> bool:
    return global_rank() == 0


def resolve_backend(requested: str) -> str:
    """The concrete backend for `requested`, or BackendUnavailable saying what is missing."""
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "auto":
        if has_neuron_devices() and has_optimum_neuron():
            return "neuron"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "neuron":
        require_neuron()
    if requested == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("--backend cuda: torch.cuda.is_available() is False on this machine")
    return requested


def require_neuron() -> None:
    if not has_optimum_neuron():
        raise BackendUnavailable(
            "--backend neuron needs optimum-neuron (pip install 'optimum-neuron[neuronx,training]==0.4.5', "
            "which brings torch-neuronx); it is not installed in this Python environment. "
            "Use --backend cpu or cuda here, or run on a trn1 node in the cluster's Neuron venv."
        )
    if not has_neuron_devices():
        raise BackendUnavailable(
            f"--backend neuron: optimum-neuron is installed but there is no Neuron device ({NEURON_DEVICE}); "
            "run on a Trainium instance."
        )

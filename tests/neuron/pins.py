"""The constraints of the check-neuron venv: the cluster venv's pins (lifecycle/provision/config.py,
their one home) with the packages that only exist for Neuron hardware left out and torch replaced
by the CPU wheel the project tests with.

    python tests/neuron/pins.py > constraints.txt

The cluster runs torch 2.8.0 (torch-neuronx's pin); this venv runs torch 2.13.0, the one build on
this machine's disk (any other version downloads gigabytes of CUDA wheels). optimum-neuron's own
Python code is the same; what differs is below it (torch's CPU kernels instead of XLA graphs).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lifecycle"))

from provision.config import NEURON_PINS  # noqa: E402

OPTIMUM_NEURON = "0.4.5"
# replaced by tests/neuron/sim (torch_xla, neuronx_distributed) or not needed off Neuron hardware
HARDWARE_ONLY = {"neuronx-cc", "torch-neuronx", "libneuronxla", "neuronx_distributed", "torch", "torchvision"}


def _name(pin: str) -> str:
    return re.split(r"[=<>~!;\[ ]", pin, maxsplit=1)[0].strip()


def local_torch() -> str:
    """The dev extra's torch pin (read without tomllib, which Python 3.10 lacks)."""
    match = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    if match is None:
        raise SystemExit("pyproject.toml pins no torch==X in its dev extra")
    return match.group(1)


def constraints() -> list[str]:
    kept = [p for p in NEURON_PINS[OPTIMUM_NEURON] if _name(p) not in HARDWARE_ONLY]
    return [*kept, local_torch()]


if __name__ == "__main__":
    print("\n".join(constraints()))

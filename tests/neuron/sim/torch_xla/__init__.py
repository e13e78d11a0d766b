"""Simulated torch_xla for `make check-neuron`: one process plays one rank of a torchrun job.

The rank and world come from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); the "XLA device"
is the CPU and a graph step is a no-op, so optimum-neuron's own Python code runs eagerly on torch's CPU
kernels. Collectives act as if every rank held this rank's values, which is what data parallelism
over identical replicas gives. Only what optimum-neuron 0.4.5's training path calls is here.
"""

from __future__ import annotations

from torch_xla import _device

__version__ = "2.8.0"
_device.install()


def sync(*args: object, **kwargs: object) -> None:
    """The end of a lazy graph: nothing to execute on an eager CPU."""


def device(index: int | None = None):
    from torch_xla.core.xla_model import xla_device

    return xla_device()

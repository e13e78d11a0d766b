"""xla_model on the CPU: the device is torch's CPU device, steps are eager, collectives see identical ranks."""

from __future__ import annotations

from typing import Any

import torch

from torch_xla import runtime as xr

XLA_DEVICE = torch.device("cpu")
REDUCE_SUM = "sum"
REDUCE_MAX = "max"
REDUCE_MIN = "min"
REDUCE_MUL = "mul"
RENDEZVOUS: list[str] = []  # the rendezvous tags this process reached, in order (tests read it)


def xla_device(n: int | None = None, devkind: str | None = None) -> torch.device:
    return XLA_DEVICE


def mark_step(wait: bool = False) -> None:
    """Eager execution: every op already ran."""


def wait_device_ops(devices: Any = None) -> None:
    pass


def get_ordinal() -> int:
    return xr.global_ordinal()


def get_local_ordinal() -> int:
    return xr.local_ordinal()


def xrt_world_size() -> int:
    return xr.world_size()


def is_master_ordinal(local: bool = True) -> bool:
    return (get_local_ordinal() if local else get_ordinal()) == 0


def rendezvous(tag: str, payload: bytes = b"", replicas: Any = None) -> list[bytes]:
    RENDEZVOUS.append(tag)
    return [payload]


def master_print(*args: Any, **kwargs: Any) -> None:
    if is_master_ordinal(local=False):
        print(*args, **kwargs)


def add_step_closure(closure: Any, args: tuple[Any, ...] = (), run_async: bool = False) -> None:
    closure(*args)


def _group_size(groups: Any) -> int:
    return len(groups[0]) if groups else xr.world_size()


def all_reduce(reduce_type: str, inputs: Any, scale: float = 1.0, groups: Any = None, pin_layout: bool = True) -> Any:
    """Every rank of the group holds these values: a sum is size x the value, max/min the value itself."""
    factor = float(_group_size(groups)) if reduce_type == REDUCE_SUM else 1.0

    def reduce(t: torch.Tensor) -> torch.Tensor:
        return t * (factor * scale) if factor * scale != 1.0 else t

    if isinstance(inputs, torch.Tensor):
        return reduce(inputs)
    for t in inputs:
        t.copy_(reduce(t))
    return inputs


def all_gather(value: torch.Tensor, dim: int = 0, groups: Any = None, output: Any = None,
               pin_layout: bool = True) -> torch.Tensor:
    return torch.cat([value] * _group_size(groups), dim=dim)


def reduce_scatter(reduce_type: str, input: torch.Tensor, scale: float, scatter_dim: int, shard_count: int,
                   groups: Any = None, output: Any = None, pin_layout: bool = True) -> torch.Tensor:
    summed = all_reduce(reduce_type, input, scale, groups)
    return torch.chunk(summed, shard_count, dim=scatter_dim)[0].contiguous()


def optimizer_step(optimizer: Any, barrier: bool = False, optimizer_args: dict[str, Any] | None = None,
                   groups: Any = None, pin_layout: bool = True) -> Any:
    return optimizer.step(**(optimizer_args or {}))


def save(data: Any, file_or_path: Any, master_only: bool = True, global_master: bool = False) -> None:
    if not master_only or is_master_ordinal(local=not global_master):
        torch.save(data, file_or_path)


def get_rng_state(device: Any = None) -> int:
    return 0


def set_rng_state(seed: int, device: Any = None) -> None:
    pass


def xla_device_hw(device: Any) -> str:
    return "NEURON"


def send_cpu_data_to_device(data: Any, device: Any, input_sharding: Any = None) -> Any:
    return data

"""A TP x PP x DP layout over WORLD_SIZE ranks, ordered as neuronx_distributed orders it: tensor-parallel
ranks are adjacent, then pipeline stages, then data-parallel replicas."""

from __future__ import annotations

from dataclasses import dataclass

from torch_xla import runtime as xr


@dataclass(frozen=True)
class _Layout:
    tp: int
    pp: int
    world: int

    @property
    def dp(self) -> int:
        return self.world // (self.tp * self.pp)


_LAYOUT: _Layout | None = None


def initialize_model_parallel(tensor_model_parallel_size: int = 1, pipeline_model_parallel_size: int = 1,
                              **kwargs: object) -> None:
    global _LAYOUT
    world = xr.world_size()
    if world % (tensor_model_parallel_size * pipeline_model_parallel_size):
        raise RuntimeError(f"world_size ({world}) is not divisible by tensor_model_parallel_size "
                           f"({tensor_model_parallel_size}) times pipeline_model_parallel_size "
                           f"({pipeline_model_parallel_size})")
    _LAYOUT = _Layout(tensor_model_parallel_size, pipeline_model_parallel_size, world)


def destroy_model_parallel() -> None:
    global _LAYOUT
    _LAYOUT = None


def model_parallel_is_initialized() -> bool:
    return _LAYOUT is not None


def _layout() -> _Layout:
    if _LAYOUT is None:
        raise RuntimeError("model parallel is not initialized")
    return _LAYOUT


def get_tensor_model_parallel_size() -> int:
    return _layout().tp


def get_pipeline_model_parallel_size() -> int:
    return _layout().pp


def get_data_parallel_size() -> int:
    return _layout().dp


def get_context_model_parallel_size() -> int:
    return 1


def get_expert_model_parallel_size() -> int:
    return 1


def get_tensor_model_parallel_rank() -> int:
    return xr.global_ordinal() % _layout().tp


def get_pipeline_model_parallel_rank() -> int:
    return (xr.global_ordinal() // _layout().tp) % _layout().pp


def get_data_parallel_rank() -> int:
    return xr.global_ordinal() // (_layout().tp * _layout().pp)


def get_tensor_model_parallel_replica_groups() -> list[list[int]]:
    tp = _layout().tp
    return [list(range(s, s + tp)) for s in range(0, _layout().world, tp)]


def get_data_parallel_replica_groups() -> list[list[int]]:
    lay = _layout()
    stride = lay.tp * lay.pp
    return [list(range(s, lay.world, stride)) for s in range(stride)]


def get_pipeline_model_parallel_replica_groups() -> list[list[int]]:
    lay = _layout()
    return [[d * lay.tp * lay.pp + p * lay.tp + t for p in range(lay.pp)]
            for d in range(lay.dp) for t in range(lay.tp)]


class _Group:
    """What code passes around as a process group; collectives in the simulation only need its size."""

    def __init__(self, groups: list[list[int]]) -> None:
        self.groups = groups

    def size(self) -> int:
        return len(self.groups[0])

    def rank(self) -> int:
        return next(g.index(r) for g in self.groups for r in g if r == xr.global_ordinal())


def get_tensor_model_parallel_group(as_list: bool = False) -> object:
    groups = get_tensor_model_parallel_replica_groups()
    return groups if as_list else _Group(groups)


def get_data_parallel_group(as_list: bool = False) -> object:
    groups = get_data_parallel_replica_groups()
    return groups if as_list else _Group(groups)


def get_pipeline_model_parallel_group(as_list: bool = False) -> object:
    groups = get_pipeline_model_parallel_replica_groups()
    return groups if as_list else _Group(groups)


# imported by optimum-neuron's inference modules only (see _import_only)
from _import_only import ImportOnly  # noqa: E402

get_kv_shared_group = ImportOnly("parallel_state.get_kv_shared_group")
get_world_group = ImportOnly("parallel_state.get_world_group")

"""Communication between tensor-parallel ranks. In a one-process simulation every peer holds this rank's
values: a reduction over the TP group of identical shards is the shard times the group size for sums,
a gather repeats the local piece, a scatter keeps this rank's piece."""

from __future__ import annotations

import torch

from neuronx_distributed.parallel_layers import parallel_state


def _tp() -> int:
    return parallel_state.get_tensor_model_parallel_size()


def reduce_from_tensor_model_parallel_region(x: torch.Tensor, process_group: object = None) -> torch.Tensor:
    return x if _tp() == 1 else x * _tp()


def copy_to_tensor_model_parallel_region(x: torch.Tensor, process_group: object = None) -> torch.Tensor:
    return x


def scatter_to_sequence_parallel_region(x: torch.Tensor, sequence_dimension: int = 0,
                                        process_group: object = None) -> torch.Tensor:
    if _tp() == 1:
        return x
    rank = parallel_state.get_tensor_model_parallel_rank()
    return torch.chunk(x, _tp(), dim=sequence_dimension)[rank].contiguous()


def gather_from_sequence_parallel_region(x: torch.Tensor, sequence_dimension: int = 0, to_model_parallel: bool = True,
                                         process_group: object = None) -> torch.Tensor:
    return x if _tp() == 1 else torch.cat([x] * _tp(), dim=sequence_dimension)


def reduce_scatter_to_sequence_parallel_region(x: torch.Tensor, sequence_dimension: int = 0,
                                               process_group: object = None) -> torch.Tensor:
    return scatter_to_sequence_parallel_region(reduce_from_tensor_model_parallel_region(x), sequence_dimension)


def gather_from_tensor_model_parallel_region(x: torch.Tensor, process_group: object = None) -> torch.Tensor:
    return x if _tp() == 1 else torch.cat([x] * _tp(), dim=-1)


def scatter_to_tensor_model_parallel_region(x: torch.Tensor, process_group: object = None) -> torch.Tensor:
    if _tp() == 1:
        return x
    return torch.chunk(x, _tp(), dim=-1)[parallel_state.get_tensor_model_parallel_rank()].contiguous()


# imported by optimum-neuron's inference modules only (see _import_only)
from _import_only import ImportOnly  # noqa: E402

_gather_along_dim = ImportOnly("mappings._gather_along_dim")
gather_from_tensor_model_parallel_region_with_dim = ImportOnly(
    "mappings.gather_from_tensor_model_parallel_region_with_dim")

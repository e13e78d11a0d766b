"""Helpers of neuronx_distributed.parallel_layers.utils that optimum-neuron calls."""

from __future__ import annotations

from typing import Any

import torch
from torch_xla import runtime as xr


def divide(numerator: int, denominator: int) -> int:
    if numerator % denominator:
        raise ValueError(f"{numerator} is not divisible by {denominator}")
    return numerator // denominator


def get_local_world_size() -> int:
    return xr.local_process_count()


def move_all_tensor_to_cpu(data: Any, convert: bool = True) -> Any:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if isinstance(data, dict):
        return {k: move_all_tensor_to_cpu(v, convert) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(move_all_tensor_to_cpu(v, convert) for v in data)
    return data


def move_model_to_device(model: torch.nn.Module, device: Any) -> None:
    model.to(device)


def set_tensor_model_parallel_attributes(tensor: torch.Tensor, is_parallel: bool, dim: int, stride: int = 1,
                                         num_partitions: int = 1) -> None:
    """What neuronx_distributed marks on a sharded parameter (consolidation reads it back)."""
    tensor.tensor_model_parallel = is_parallel  # type: ignore[attr-defined]
    tensor.partition_dim = dim  # type: ignore[attr-defined]
    tensor.partition_stride = stride  # type: ignore[attr-defined]
    tensor.num_partitions = num_partitions  # type: ignore[attr-defined]


class EmbeddingUtility:
    @staticmethod
    def range_from_per_partition_vocab_size(per_partition_vocab_size: int, rank: int,
                                            world_size: int) -> tuple[int, int]:
        first = rank * per_partition_vocab_size
        return first, first + per_partition_vocab_size

    @staticmethod
    def range_from_global_vocab_size(global_vocab_size: int, rank: int, world_size: int) -> tuple[int, int]:
        return EmbeddingUtility.range_from_per_partition_vocab_size(divide(global_vocab_size, world_size), rank,
                                                                    world_size)


def get_padding_length(numerator: int, denominator: int) -> int:
    return (denominator - numerator % denominator) % denominator

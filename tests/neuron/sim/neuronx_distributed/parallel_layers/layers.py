"""Parallel layers as ordinary layers that hold this rank's shard, marked the way neuronx_distributed marks
them (consolidation reads the marks back from the checkpoint metadata)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuronx_distributed.parallel_layers import mappings, parallel_state
from neuronx_distributed.parallel_layers.utils import divide, set_tensor_model_parallel_attributes


def _tp() -> int:
    return parallel_state.get_tensor_model_parallel_size()


def create_local_weight(full_weight: torch.Tensor, partition_dim: int, per_partition_size: int, stride: int,
                        out_weight: torch.Tensor | None = None) -> torch.Tensor:
    """This rank's part of `full_weight`: `stride` interleaved blocks along `partition_dim`, as NxD splits
    fused weights (gate/up, q/k/v) so each rank holds a slice of each."""
    rank = parallel_state.get_tensor_model_parallel_rank()
    block = divide(per_partition_size, stride)
    blocks = torch.split(full_weight, block, dim=partition_dim)
    local = torch.cat(blocks[rank::_tp()], dim=partition_dim)
    if out_weight is None:
        return local.contiguous()
    with torch.no_grad():
        out_weight.copy_(local)
    return out_weight


class BaseParallelLinear(nn.Module):
    def initialize_weight_and_bias(self) -> None:
        self._init_weight(self.weight)
        if getattr(self, "bias", None) is not None:
            with torch.no_grad():
                self.bias.zero_()

    def _init_weight(self, weight: torch.Tensor) -> None:
        init = getattr(self, "arg_init_method", None)
        if init is not None:
            init(weight)
        else:
            nn.init.kaiming_uniform_(weight, a=5 ** 0.5)


class ColumnParallelLinear(BaseParallelLinear):
    """Output features split over the TP ranks (dim 0 of the weight)."""

    def __init__(self, input_size: int, output_size: int, bias: bool = True, gather_output: bool = True,
                 dtype: torch.dtype = torch.float32, device: Any = None, stride: int = 1,
                 init_method: Any = None, sequence_parallel_enabled: bool = False, sequence_dimension: int = 0,
                 keep_master_weight: bool = False, skip_bias_add: bool = False, pad: bool = False,
                 tensor_model_parallel_group: Any = None, reduce_dtype: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self.input_size, self.output_size = input_size, output_size
        self.gather_output, self.skip_bias_add = gather_output, skip_bias_add
        self.sequence_parallel_enabled, self.sequence_dimension = sequence_parallel_enabled, sequence_dimension
        self.tensor_parallel_group = tensor_model_parallel_group
        self.arg_init_method, self.dtype, self.stride = init_method, dtype, stride
        self.output_size_per_partition = divide(output_size, _tp())
        self.weight = nn.Parameter(torch.empty(self.output_size_per_partition, input_size, dtype=dtype))
        self._init_weight(self.weight)
        set_tensor_model_parallel_attributes(self.weight, True, 0, stride, _tp())
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.output_size_per_partition, dtype=dtype))
            set_tensor_model_parallel_attributes(self.bias, True, 0, stride, _tp())
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sequence_parallel_enabled:
            x = mappings.gather_from_sequence_parallel_region(x, self.sequence_dimension)
        out = F.linear(x, self.weight, None if self.skip_bias_add else self.bias)
        if self.gather_output:
            out = mappings.gather_from_tensor_model_parallel_region(out)
        return (out, self.bias) if self.skip_bias_add else out


class RowParallelLinear(BaseParallelLinear):
    """Input features split over the TP ranks (dim 1 of the weight); the partial products are summed."""

    def __init__(self, input_size: int, output_size: int, bias: bool = True, input_is_parallel: bool = False,
                 dtype: torch.dtype = torch.float32, device: Any = None, stride: int = 1,
                 init_method: Any = None, sequence_parallel_enabled: bool = False, sequence_dimension: int = 0,
                 keep_master_weight: bool = False, skip_bias_add: bool = False,
                 tensor_model_parallel_group: Any = None, reduce_dtype: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self.input_size, self.output_size = input_size, output_size
        self.input_is_parallel, self.skip_bias_add = input_is_parallel, skip_bias_add
        self.sequence_parallel_enabled, self.sequence_dimension = sequence_parallel_enabled, sequence_dimension
        self.tensor_parallel_group = tensor_model_parallel_group
        self.arg_init_method, self.dtype, self.stride = init_method, dtype, stride
        self.input_size_per_partition = divide(input_size, _tp())
        self.weight = nn.Parameter(torch.empty(output_size, self.input_size_per_partition, dtype=dtype))
        self._init_weight(self.weight)
        set_tensor_model_parallel_attributes(self.weight, True, 1, stride, _tp())
        if bias:
            self.bias = nn.Parameter(torch.zeros(output_size, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.input_is_parallel:
            x = mappings.scatter_to_tensor_model_parallel_region(x)
        out = F.linear(x, self.weight)
        if self.sequence_parallel_enabled:
            out = mappings.reduce_scatter_to_sequence_parallel_region(out, self.sequence_dimension)
        else:
            out = mappings.reduce_from_tensor_model_parallel_region(out)
        if self.skip_bias_add:
            return out, self.bias
        return out if self.bias is None else out + self.bias


class ParallelEmbedding(nn.Module):
    """The vocabulary split over the TP ranks (dim 0); a token outside this rank's range embeds to zero."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, init_method: Any = None, dtype: torch.dtype = torch.float32,
                 device: Any = None, shard_across_embedding: bool = False, sequence_parallel_enabled: bool = False,
                 sequence_dimension: int | None = None, pad: bool = False,
                 tensor_model_parallel_group: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.sequence_parallel_enabled, self.sequence_dimension = sequence_parallel_enabled, sequence_dimension
        self.tensor_parallel_group = tensor_model_parallel_group
        self.shard_across_embedding = shard_across_embedding
        self.arg_init_method, self.dtype = init_method, dtype
        rank = parallel_state.get_tensor_model_parallel_rank()
        self.num_embeddings_per_partition = divide(num_embeddings, _tp())
        self.start_index = rank * self.num_embeddings_per_partition
        self.end_index = self.start_index + self.num_embeddings_per_partition
        self.weight = nn.Parameter(torch.empty(self.num_embeddings_per_partition, embedding_dim, dtype=dtype))
        nn.init.normal_(self.weight)
        set_tensor_model_parallel_attributes(self.weight, True, 0, 1, _tp())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        outside = (ids < self.start_index) | (ids >= self.end_index)
        local = (ids - self.start_index).masked_fill(outside, 0)
        out = F.embedding(local, self.weight).masked_fill(outside.unsqueeze(-1), 0.0)
        return mappings.reduce_from_tensor_model_parallel_region(out)


class SPMDRank(nn.Module):
    def __init__(self, world_size: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.world_size = world_size

    def get_rank(self) -> torch.Tensor:
        return torch.tensor([parallel_state.get_tensor_model_parallel_rank()], dtype=torch.int32)

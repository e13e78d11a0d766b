"""Gradient all-reduce over data-parallel replicas (identical here: the mean is the value) and clipping."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def bucket_allreduce_gradients(grads_list: list[torch.Tensor], reduce_over_ep_group: bool = False) -> None:
    """Replicas hold the same gradients in the simulation, so their mean is each one's own."""


def clip_grad_norm(parameters: Iterable[Any], max_norm: float, norm_type: float = 2, **kwargs: Any) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm, norm_type=norm_type)

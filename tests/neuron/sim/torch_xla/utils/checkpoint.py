"""Activation checkpointing: torch's own (torch_xla's is a copy of it with graph barriers). The
recomputation in the backward pass runs where the thread-local XLA-on-CPU mode is not active, so the
checkpointed function brings it along."""

from __future__ import annotations

import functools
from typing import Any

import torch.utils.checkpoint

from torch_xla._device import XlaOnCpu


def checkpoint(function: Any, *args: Any, **kwargs: Any) -> Any:
    @functools.wraps(function)
    def on_cpu(*fargs: Any, **fkwargs: Any) -> Any:
        with XlaOnCpu():
            return function(*fargs, **fkwargs)

    return torch.utils.checkpoint.checkpoint(on_cpu, *args, **kwargs)

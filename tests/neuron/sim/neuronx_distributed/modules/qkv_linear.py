"""GQA QKV layer: used when a model has fewer KV heads than TP ranks; the simulated runs do not reach it."""

from __future__ import annotations

from typing import Any

from torch import nn


class GQAQKVColumnParallelLinear(nn.Module):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("GQAQKVColumnParallelLinear is not simulated (more TP ranks than KV heads)")

"""Pipeline parallelism is not simulated: the project trains with pipeline_parallel_size 1."""

from __future__ import annotations

from typing import Any


class NxDPPModel:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pipeline parallelism is not simulated")

"""The XLA device is the CPU: any torch call naming device "xla" (optimum-neuron's modeling code builds
its causal mask with `device="xla"`) runs on the CPU instead. A torch function mode entered once, when
torch_xla is imported, does the renaming."""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode


def _is_xla(value: Any) -> bool:
    if isinstance(value, torch.device):
        return value.type == "xla"
    return isinstance(value, str) and (value == "xla" or value.startswith("xla:"))


class XlaOnCpu(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if "device" in kwargs and _is_xla(kwargs["device"]):
            kwargs = {**kwargs, "device": "cpu"}
        if any(_is_xla(a) for a in args):
            args = tuple("cpu" if _is_xla(a) else a for a in args)
        return func(*args, **kwargs)


_MODE = XlaOnCpu()


def install() -> None:
    if not getattr(_MODE, "_entered", False):
        _MODE.__enter__()
        _MODE._entered = True  # type: ignore[attr-defined]

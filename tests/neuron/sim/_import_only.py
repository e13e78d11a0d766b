"""Modules that optimum-neuron 0.4.5 imports only for inference on Neuron hardware.

Its training model lookup imports the whole inference package (optimum/neuron/models/auto_model.py,
`has_neuron_model_class` imports `.inference.auto_models`), which imports the Neuron compiler's NKI
kernels, torch_neuronx's XLA custom calls and neuronx_distributed's tracing and MoE modules at module
level. Those names only have to exist: every one here is a stand-in that can decorate, be subclassed
and be called at import time, and that the training path never reaches (the checks in
tests/neuron would fail on its first use, since the stand-ins compute nothing).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

PREFIXES = ("neuronxcc", "torch_neuronx.xla_impl", "torch_neuronx.parallel_compile", "neuronx_distributed.trace", "neuronx_distributed.modules.moe",
            "neuronx_distributed.operators", "neuronx_distributed.utils.utils")
USED: list[str] = []  # names called after import (tests assert it stays empty during training)


class _Base:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} is inference-only and not simulated")


class ImportOnly:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> ImportOnly:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return ImportOnly(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> ImportOnly:
        USED.append(self._name)
        return ImportOnly(f"{self._name}()")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (_Base,)


class _Module(types.ModuleType):
    def __getattr__(self, attr: str) -> ImportOnly:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return ImportOnly(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == p or fullname.startswith(p + ".") for p in PREFIXES):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())

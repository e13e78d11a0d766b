"""Batches go to the "device" as they are: it is the CPU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class MpDeviceLoader:
    def __init__(self, loader: Any, device: Any, **kwargs: Any) -> None:
        self._loader = loader
        self._device = device

    def __iter__(self) -> Iterator[Any]:
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

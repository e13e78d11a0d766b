"""torchrun starts the processes; nothing to spawn here."""

from __future__ import annotations

from typing import Any


def spawn(fn: Any, args: tuple[Any, ...] = (), nprocs: int | None = None, start_method: str = "spawn") -> None:
    raise NotImplementedError("processes come from torchrun in the simulation")

"""xser: on the CPU, torch.save and torch.load."""

from __future__ import annotations

from typing import Any

import torch


def save(data: Any, path: Any, master_only: bool = True, global_master: bool = False) -> None:
    torch.save(data, path)


def load(path: Any) -> Any:
    return torch.load(path, weights_only=False)

from __future__ import annotations

from typing import Any


def apply_activation_checkpointing(model: Any, check_fn: Any = None) -> Any:
    return model

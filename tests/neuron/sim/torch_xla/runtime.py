"""Ranks as torchrun gives them."""

from __future__ import annotations

import os


def global_ordinal() -> int:
    return int(os.environ.get("RANK", "0"))


def local_ordinal() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_process_count() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def using_pjrt() -> bool:
    return True


def device_type() -> str:
    return "NEURON"

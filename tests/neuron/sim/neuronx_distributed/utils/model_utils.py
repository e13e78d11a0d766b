from __future__ import annotations

import enum

from neuronx_distributed.parallel_layers.utils import move_model_to_device


class LogicalNCConfig(enum.Enum):
    LNC_1 = 1
    LNC_2 = 2


def get_platform_lnc() -> LogicalNCConfig:
    """trn1: one physical NeuronCore per logical core."""
    return LogicalNCConfig.LNC_1


__all__ = ["LogicalNCConfig", "get_platform_lnc", "move_model_to_device"]

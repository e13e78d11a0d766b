"""The LoRA configuration, built once for both backends, and parameter counting."""

from __future__ import annotations

from typing import Any


def lora_config(r: int, alpha: int, dropout: float, target_modules: list[str]) -> Any:
    """A peft LoraConfig for causal-LM fine-tuning (no bias training).

    optimum-neuron adapts the same config to its parallel layers, so the CPU and
    Neuron backends train the same adapter.
    """
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; works on meta-device models too."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total

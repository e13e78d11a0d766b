"""Fixtures: a tiny GQA Llama (32 query heads, 8 kv heads), a peft adapter with random A and non-zero B."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"]


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import TinyLlamaSpec, make_tiny_llama

    spec = TinyLlamaSpec(hidden_size=128, intermediate_size=256, num_attention_heads=32, num_key_value_heads=8)
    return make_tiny_llama(tmp_path_factory.mktemp("base"), spec, dtype="float32")


def make_adapter(base: Path, out: Path, **lora: Any) -> Path:
    """A peft adapter over `base` whose every LoRA tensor is random (B too, so merging changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, **lora)
    peft_model = get_peft_model(model, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(std=0.05)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def adapter(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(base_model, tmp_path_factory.mktemp("adapter"))

"""The LoRA configuration: the trainable-parameter count of the defaults on Llama-3-8B."""

from __future__ import annotations

import dataclasses

import pytest

from training.finetune import ModelArguments
from training.lora import count_parameters, lora_config

# meta-llama/Meta-Llama-3-8B config.json, written out so nothing is downloaded
LLAMA3_8B = {
    "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "bos_token_id": 128000, "eos_token_id": 128001,
}
LLAMA3_8B_PARAMS = 8_030_261_248


@pytest.fixture(scope="module")
def llama3_8b_meta():  # type: ignore[no-untyped-def]
    """Llama-3-8B on the meta device: real shapes, no memory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(LlamaConfig(**LLAMA3_8B))


def test_the_meta_model_has_llama3_8b_size(llama3_8b_meta) -> None:  # type: ignore[no-untyped-def]
    assert count_parameters(llama3_8b_meta) == (LLAMA3_8B_PARAMS, LLAMA3_8B_PARAMS)


def test_default_lora_trains_6815744_parameters_of_llama3_8b(llama3_8b_meta) -> None:  # type: ignore[no-untyped-def]
    from peft import get_peft_model

    defaults = {f.name: f.default for f in dataclasses.fields(ModelArguments)}  # the flags' defaults
    targets = defaults["lora_target_modules"].split(",")
    model = get_peft_model(llama3_8b_meta, lora_config(
        defaults["lora_r"], defaults["lora_alpha"], defaults["lora_dropout"], targets))
    trainable, total = count_parameters(model)
    # per layer: q_proj 16*(4096+4096) + v_proj 16*(4096+1024) = 212,992; times 32 layers
    assert trainable == 6_815_744
    assert total == LLAMA3_8B_PARAMS + 6_815_744
    model.unload()

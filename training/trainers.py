"""Build the SFT trainer for a backend: trl's SFTTrainer (cpu, cuda) or optimum-neuron's NeuronSFTTrainer.

Both receive the same packed dataset, LoRA config, callbacks and SFT settings;
only model loading and the few Neuron-only settings differ. optimum.neuron is
imported inside `build_neuron_trainer` so nothing else needs it installed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerParts:
    """What every backend's trainer is built from."""

    model_path: str
    tokenizer: Any
    train_dataset: Any
    eval_dataset: Any | None
    peft_config: Any | None
    callbacks: list[Any]
    sft_kwargs: dict[str, Any]
    bf16: bool


def _common(parts: TrainerParts) -> dict[str, Any]:
    from transformers import default_data_collator

    return {
        "processing_class": parts.tokenizer,
        "train_dataset": parts.train_dataset,
        # blocks are packed to one length already: stack them, nothing to pad or re-tokenize
        "data_collator": default_data_collator,
        "peft_config": parts.peft_config,
        "callbacks": parts.callbacks,
    }


def _sft_settings(parts: TrainerParts) -> dict[str, Any]:
    return {
        **parts.sft_kwargs,
        "bf16": parts.bf16,
        "packing": False,  # done by training.data, identically for every backend
        "dataset_kwargs": {"skip_prepare_dataset": True},
        "remove_unused_columns": False,
        "label_names": ["labels"],  # peft wrappers hide the model's signature, so say it
        "report_to": [],
    }


def build_torch_trainer(parts: TrainerParts, backend: str) -> Any:
    """trl SFTTrainer on CPU (gloo under torchrun) or CUDA (nccl)."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    on_cpu = backend == "cpu"
    if on_cpu:
        _accept_indexed_cpu_locations()
    has_eval = parts.eval_dataset is not None
    config = SFTConfig(
        **_sft_settings(parts),
        use_cpu=on_cpu,
        eval_strategy="steps" if has_eval else "no",
        per_device_eval_batch_size=parts.sft_kwargs["per_device_train_batch_size"],
    )
    # CPU keeps fp32 weights (bf16 then means autocast); CUDA loads bf16 weights to halve memory.
    dtype = torch.bfloat16 if parts.bf16 and not on_cpu else torch.float32
    model = AutoModelForCausalLM.from_pretrained(parts.model_path, dtype=dtype)
    return SFTTrainer(model=model, args=config, eval_dataset=parts.eval_dataset, **_common(parts))


@functools.cache
def _accept_indexed_cpu_locations() -> None:
    """Let torch.load restore storages tagged "cpu:N".

    Under torchrun on CPU, transformers resumes the optimizer with
    map_location=args.device, which is cpu:<local rank>; torch only knows the
    plain "cpu" tag and refuses the checkpoint. The storage is already in host
    memory, so it is returned as it is.
    """
    import torch

    def restore(obj: Any, location: str) -> Any:
        return obj if location.startswith("cpu:") else None

    torch.serialization.register_package(11, lambda obj: None, restore)


def neuron_settings(parts: TrainerParts, tensor_parallel_size: int) -> dict[str, Any]:
    """NeuronSFTConfig's arguments: the common SFT settings plus the Neuron-only ones."""
    return {
        **_sft_settings(parts),
        "tensor_parallel_size": tensor_parallel_size,
        # Graphs are cached on FSx. Pushing them to the Hub's cache at the end of train() makes every
        # rank query the Hub and raise on a 429, 5xx or connection error after training succeeded
        # (optimum/neuron/trainers/transformers.py, NeuronTrainer.train -> synchronize_hub_cache).
        "skip_cache_push": True,
    }


def build_neuron_trainer(parts: TrainerParts, tensor_parallel_size: int) -> Any:
    """NeuronSFTTrainer with the model sharded over `tensor_parallel_size` NeuronCores.

    optimum-neuron 0.4.5 does not evaluate (NeuronTrainingArguments.__post_init__ in
    optimum/neuron/trainers/training_args.py raises "Evaluation is not supported yet." when
    do_eval is set), so the eval split is not passed here and eval_strategy stays "no".
    """
    import torch

    try:
        from optimum.neuron import NeuronSFTConfig, NeuronSFTTrainer
        from optimum.neuron.models.training import NeuronModelForCausalLM
    except ImportError as e:
        raise RuntimeError(f"--backend neuron: cannot import optimum.neuron ({e})") from e

    config = NeuronSFTConfig(**neuron_settings(parts, tensor_parallel_size))
    max_len = parts.sft_kwargs["max_length"]
    # optimum-neuron's flash attention kernel wants sequence lengths in multiples of 2048
    attn = "flash_attention_2" if max_len % 2048 == 0 else "eager"
    model = NeuronModelForCausalLM.from_pretrained(
        parts.model_path,
        config.trn_config,
        torch_dtype=torch.bfloat16 if parts.bf16 else torch.float32,
        attn_implementation=attn,
    )
    if parts.eval_dataset is not None:
        logger.warning("the neuron backend does not evaluate (optimum-neuron 0.4.5); the held-out split is "
                       "kept out of training and scored after merge by training.evaluate")
    return NeuronSFTTrainer(model=model, args=config, **_common(parts))

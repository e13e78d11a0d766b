"""Answer an instruction with a fine-tuned model, in the prompt format it was trained on.

Example (base model + LoRA adapter, as training.finetune leaves them):
    python -m training.generate --model_path /tmp/tiny --adapter_path /tmp/run \\
        --prompt "What is the capital of France?" --max_new_tokens 32

Example (a merged model from training.merge, with context):
    python -m training.generate --model_path /fsx/models/llama3-merged \\
        --prompt "What colour is the animal in the text?" --context "I saw a red fox."

The prompt is built by training.prompts, the same code that formats training data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import ArgumentError, require_dir
from training.prompts import encode_prompt, format_prompt


@dataclass
class GenerateArguments:
    model_path: str = field(metadata={"help": "A merged model, or the base model when --adapter_path is given."})
    prompt: str = field(metadata={"help": "The instruction to answer."})
    adapter_path: str | None = field(default=None, metadata={"help": "A peft LoRA adapter directory."})
    context: str = field(default="", metadata={"help": "Optional context for the instruction."})
    max_new_tokens: int = field(default=128, metadata={"help": "Upper bound on generated tokens."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (with --do_sample)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass (with --do_sample)."})
    dtype: str = field(default="auto", metadata={
        "help": "Weights dtype.", "choices": ["auto", "bfloat16", "float16", "float32"]})
    seed: int = field(default=0, metadata={"help": "Seed for sampling."})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ArgumentError(f"--max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.prompt.strip():
            raise ArgumentError("--prompt must not be empty")
        if self.temperature <= 0:
            raise ArgumentError(f"--temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ArgumentError(f"--top_p must be in (0, 1], got {self.top_p}")
        model = require_dir("model_path", self.model_path, "pass a merged model or the base model's directory")
        if not (model / "config.json").is_file():
            raise ArgumentError(f"--model_path {self.model_path}: no config.json, so not a model directory")
        if self.adapter_path is not None:
            adapter = require_dir("adapter_path", self.adapter_path, "pass the adapter directory training left")
            if not (adapter / "adapter_config.json").is_file():
                raise ArgumentError(f"--adapter_path {self.adapter_path}: no adapter_config.json, so not a peft "
                                    "adapter; for a sharded Neuron checkpoint run training.consolidate first")


def prompt_ids(tokenizer: Any, instruction: str, context: str = "") -> list[int]:
    """The token ids the model sees before its answer, exactly as in training."""
    return encode_prompt(tokenizer, format_prompt(instruction, context))


def load(model_path: str, adapter_path: str | None, dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer); the tokenizer comes from the adapter directory when it has one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok_dir = adapter_path if adapter_path and (Path(adapter_path) / "tokenizer_config.json").exists() else model_path
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_path, dtype="auto" if dtype == "auto" else getattr(torch, dtype))
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path)
    model.eval()
    return model, tokenizer


def generate(model: Any, tokenizer: Any, args: GenerateArguments) -> str:
    import torch

    ids = torch.tensor([prompt_ids(tokenizer, args.prompt, args.context)], device=model.device)
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=args.max_new_tokens,
            do_sample=args.do_sample,
            temperature=args.temperature if args.do_sample else None,
            top_p=args.top_p if args.do_sample else None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)).strip()


def main(args: GenerateArguments) -> str:
    model, tokenizer = load(args.model_path, args.adapter_path, args.dtype)
    answer = generate(model, tokenizer, args)
    print(answer, flush=True)
    return answer


if __name__ == "__main__":
    import sys

    from training.cli import run_entry_point

    sys.exit(run_entry_point((GenerateArguments,), main, prog="python -m training.generate", description=__doc__))

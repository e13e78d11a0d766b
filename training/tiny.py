"""Tiny Llama, tokenizer and dolly-format data, made offline.

The local cluster demo and the tests need a real model and data without a hub:
this builds a random Llama from a LlamaConfig, trains a small byte-level BPE
tokenizer on the synthetic corpus, and writes a dolly-style JSONL file whose
answers follow learnable patterns, so a short run shows the loss going down.

Example:
    python -m training.tiny --model_dir /tmp/tiny-llama --dataset_path /tmp/dolly.jsonl --num_records 256
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import ArgumentError, require_output_dir

BOS, EOS, PAD = "<s>", "</s>", "<pad>"

_CITIES = {
    "France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima",
    "Canada": "Ottawa", "Egypt": "Cairo", "Norway": "Oslo", "Chile": "Santiago",
    "India": "New Delhi", "Spain": "Madrid", "Ghana": "Accra", "Italy": "Rome",
}
_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
_ANIMALS = ["cat", "dog", "horse", "owl", "whale", "fox", "bee", "lion"]


def make_records(num_records: int, seed: int = 0) -> list[dict[str, str]]:
    """Dolly-format rows (instruction/context/response) with patterns a tiny model can learn."""
    rng = random.Random(seed)
    records: list[dict[str, str]] = []
    for i in range(num_records):
        kind = i % 3
        if kind == 0:
            country = rng.choice(sorted(_CITIES))
            records.append({
                "instruction": f"What is the capital of {country}?",
                "context": "",
                "response": f"The capital of {country} is {_CITIES[country]}.",
            })
        elif kind == 1:
            animal, colour = rng.choice(_ANIMALS), rng.choice(_COLOURS)
            records.append({
                "instruction": "What colour is the animal in the text?",
                "context": f"I saw a {colour} {animal} in the garden today.",
                "response": f"The {animal} is {colour}.",
            })
        else:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            records.append({
                "instruction": f"Add {a} and {b}.",
                "context": "",
                "response": f"{a} plus {b} is {a + b}.",
            })
    return records


def write_dolly_jsonl(path: Path, num_records: int, seed: int = 0) -> Path:
    from training.fsio import write_text_atomic

    return write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in make_records(num_records, seed)))


def _corpus() -> list[str]:
    rows = make_records(600, seed=1234)
    text = [" ".join(r.values()) for r in rows]
    text += ["### Instruction", "### Context", "### Answer", "The quick brown fox jumps over the lazy dog."]
    return text


def make_tokenizer(vocab_size: int = 512) -> Any:
    """A byte-level BPE trained on the synthetic corpus: any text encodes, nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)


@dataclass(frozen=True)
class TinyLlamaSpec:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    extra: dict[str, Any] = field(default_factory=dict)


def make_tiny_llama(model_dir: Path, spec: TinyLlamaSpec = TinyLlamaSpec(), seed: int = 0,
                    dtype: str = "float32") -> Path:
    """Save a random Llama and its tokenizer in the Hugging Face layout (safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **spec.extra,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return model_dir


@dataclass
class TinyArguments:
    model_dir: str = field(metadata={"help": "Where to write the tiny Llama and its tokenizer."})
    dataset_path: str | None = field(default=None, metadata={"help": "Where to write a dolly-format JSONL file."})
    num_records: int = field(default=256, metadata={"help": "Rows in the data set."})
    seed: int = field(default=0, metadata={"help": "Seed for weights and data."})

    def __post_init__(self) -> None:
        if self.num_records < 1:
            raise ArgumentError(f"--num_records must be >= 1, got {self.num_records}")
        require_output_dir("model_dir", self.model_dir)
        if self.dataset_path is not None:
            if Path(self.dataset_path).is_dir():
                raise ArgumentError(f"--dataset_path {self.dataset_path}: is a directory; name the .jsonl file "
                                    "to write")
            require_output_dir("dataset_path", str(Path(self.dataset_path).parent))


def main(args: TinyArguments) -> None:
    make_tiny_llama(Path(args.model_dir), seed=args.seed)
    print(f"tiny Llama written to {args.model_dir}")
    if args.dataset_path:
        write_dolly_jsonl(Path(args.dataset_path), args.num_records, args.seed)
        print(f"{args.num_records} dolly-format records written to {args.dataset_path}")


if __name__ == "__main__":
    import sys

    from training.cli import run_entry_point

    sys.exit(run_entry_point((TinyArguments,), main, prog="python -m training.tiny", description=__doc__))

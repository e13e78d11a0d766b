"""Did the fine-tuning help? The base and the merged model scored on the held-out split, side by side.

Example (the local demo's run directory):
    python -m training.evaluate --base_model_path /fsx/models/tiny-llama \\
        --merged_model_path /fsx/s3/runs/demo/merged --heldout_path /fsx/s3/runs/demo/train/heldout.json \\
        --output_path /fsx/s3/runs/demo/evaluation.json --max_examples 64

Both models see the held-out examples exactly as training saw its data: each
example formatted by training.prompts, with BOS and EOS, through the base
model's tokenizer (the one training used), cut at training's max_seq_length.
Loss is the mean cross-entropy per predicted token over the first
--max_examples examples, perplexity its exp. Then both models answer the first
--num_prompts held-out instructions (greedy, through training.generate) next to
the reference answer. Models are loaded one at a time, on CUDA when there is a
GPU, else on the CPU; the results JSON says which device and how long each
part took.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.backends import BackendUnavailable
from training.data import DataError, Example, HeldOut, read_heldout
from training.errors import UserError, require_at_least, require_dir

logger = logging.getLogger("training.evaluate")

DEVICES = ("auto", "cpu", "cuda")
MODEL_ROLES = ("base", "merged")


class EvaluateInputError(UserError):
    """A flag value evaluate cannot use (a missing model directory, a bound below 1)."""


@dataclass
class EvaluateArguments:
    base_model_path: str = field(metadata={"help": "The base model training started from (and its tokenizer)."})
    merged_model_path: str = field(metadata={"help": "The merged model (training.merge's output)."})
    heldout_path: str = field(metadata={"help": "heldout.json that training.finetune wrote into its output_dir."})
    output_path: str = field(metadata={"help": "Where the results JSON goes (written atomically)."})
    max_examples: int = field(default=64, metadata={
        "help": "Score at most the first N held-out examples (keeps Llama-3-8B on CPUs within minutes)."})
    num_prompts: int = field(default=4, metadata={
        "help": "Held-out instructions both models answer, side by side (0: none)."})
    max_new_tokens: int = field(default=48, metadata={"help": "Upper bound on each generated answer."})
    batch_size: int = field(default=4, metadata={"help": "Examples per forward pass."})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "Tokens per example at most (default: the max_seq_length training used)."})
    device: str = field(default="auto", metadata={
        "help": "auto: cuda when a GPU is visible, else cpu.", "choices": list(DEVICES)})
    dtype: str = field(default="auto", metadata={
        "help": "Weights dtype (auto: as each model is stored).",
        "choices": ["auto", "bfloat16", "float16", "float32"]})

    def __post_init__(self) -> None:
        for name in ("max_examples", "max_new_tokens", "batch_size"):
            require_at_least(self, name, 1)
        require_at_least(self, "num_prompts", 0)
        if self.max_seq_length is not None:
            require_at_least(self, "max_seq_length", 8)
        for name in ("base_model_path", "merged_model_path"):
            path = require_dir(name, getattr(self, name))
            if not (path / "config.json").is_file():
                raise EvaluateInputError(f"--{name} {path}: not a model directory (no config.json)")


def choose_device(requested: str) -> str:
    """cuda or cpu; evaluation runs wherever the merged model fits, never on NeuronCores."""
    import torch

    if requested not in DEVICES:
        raise EvaluateInputError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda: torch.cuda.is_available() is False on this machine")
    return requested


def token_sequences(examples: list[Example], tokenizer: Any, max_seq_length: int) -> list[list[int]]:
    """BOS + formatted example + EOS (training.data.tokenize, as in training), cut to max_seq_length."""
    from training.data import tokenize

    return [ids[:max_seq_length] for ids in tokenize(examples, tokenizer)]


@dataclass(frozen=True)
class Score:
    loss: float  # mean cross-entropy per predicted token
    tokens: int  # predicted tokens


def score(model: Any, sequences: list[list[int]], pad_id: int, batch_size: int, desc: str) -> Score:
    """Token-weighted mean next-token cross-entropy of `model` over `sequences` (right-padded batches)."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    total, tokens = 0.0, 0
    batches = range(0, len(sequences), batch_size)
    with torch.inference_mode():
        for start in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 2):
            batch = sequences[start : start + batch_size]
            width = max(map(len, batch))
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in batch], device=model.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=model.device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100, reduction="sum"))
            tokens += int((labels != -100).sum())
    if tokens == 0:
        raise DataError("the held-out examples have no tokens to predict")
    return Score(total / tokens, tokens)


def answers(model: Any, tokenizer: Any, model_path: str, examples: list[Example], max_new_tokens: int,
            desc: str) -> list[str]:
    """Greedy answers through training.generate, the prompt built exactly as in training."""
    from tqdm.auto import tqdm

    from training.generate import GenerateArguments, generate

    return [generate(model, tokenizer, GenerateArguments(model_path=model_path, prompt=ex.instruction,
                                                         context=ex.context, max_new_tokens=max_new_tokens))
            for ex in tqdm(examples, desc=desc, unit="prompt", disable=len(examples) < 2)]


def evaluate_model(role: str, path: str, args: EvaluateArguments, device: str, tokenizer: Any,
                   sequences: list[list[int]], prompts: list[Example]) -> dict[str, Any]:
    """Load one model, score it and let it answer; the model is freed before returning."""
    from training.generate import load
    from training.metrics import perplexity

    t0 = time.perf_counter()
    model, _ = load(path, None, args.dtype)
    model.to(device)
    loaded = time.perf_counter()
    result = score(model, sequences, tokenizer.pad_token_id, args.batch_size, desc=f"scoring {role}")
    scored = time.perf_counter()
    generated = answers(model, tokenizer, path, prompts, args.max_new_tokens, desc=f"answering ({role})")
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    del model
    gc.collect()
    done = time.perf_counter()
    logger.info("%s: loss %.4f, perplexity %.2f (load %.1f s, score %.1f s, generate %.1f s)", role,
                result.loss, perplexity(result.loss), loaded - t0, scored - loaded, done - scored)
    return {
        "path": path, "dtype": dtype, "loss": result.loss, "perplexity": perplexity(result.loss),
        "tokens": result.tokens, "answers": generated,
        "seconds": {"load": loaded - t0, "score": scored - loaded, "generate": done - scored, "total": done - t0},
    }


def evaluation(args: EvaluateArguments, heldout: HeldOut, device: str) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.base_model_path)  # what training.finetune used
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_len = args.max_seq_length or heldout.max_seq_length
    scored = heldout.examples[: args.max_examples]
    sequences = token_sequences(scored, tokenizer, max_len)
    prompts = heldout.examples[: args.num_prompts]
    print(f"evaluate: device {device} ({torch.get_num_threads()} CPU thread(s)), {len(scored)} of "
          f"{len(heldout.examples)} held-out examples, {sum(map(len, sequences)):,} tokens", flush=True)
    models = {role: evaluate_model(role, path, args, device, tokenizer, sequences, prompts)
              for role, path in zip(MODEL_ROLES, (args.base_model_path, args.merged_model_path), strict=True)}
    seconds = time.perf_counter() - t0
    return {
        "device": device,
        "cpu_threads": torch.get_num_threads(),
        "seconds": seconds,
        "heldout": {"path": args.heldout_path, "examples": len(heldout.examples), "examples_scored": len(scored),
                    "max_seq_length": max_len, "dataset_path": heldout.dataset_path, "seed": heldout.seed,
                    "eval_fraction": heldout.eval_fraction},
        "models": {role: {k: v for k, v in m.items() if k != "answers"} for role, m in models.items()},
        "generations": [
            {"instruction": ex.instruction, "context": ex.context, "reference": ex.response,
             **{role: models[role]["answers"][i] for role in MODEL_ROLES}}
            for i, ex in enumerate(prompts)],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(args: EvaluateArguments) -> dict[str, Any]:
    from training.fsio import write_json_atomic

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    heldout = read_heldout(Path(args.heldout_path))
    if not heldout.examples:
        raise DataError(f"{args.heldout_path}: the held-out split is empty")
    device = choose_device(args.device)
    results = evaluation(args, heldout, device)
    write_json_atomic(Path(args.output_path), results)
    for role in MODEL_ROLES:
        m = results["models"][role]
        print(f"{role:<7} held-out loss {m['loss']:.4f}  perplexity {m['perplexity']:,.2f}  "
              f"({m['seconds']['total']:.1f} s)", flush=True)
    print(f"evaluated on {device} in {results['seconds']:.1f} s; results in {args.output_path}", flush=True)
    return results


if __name__ == "__main__":
    import sys

    from training.cli import run_entry_point

    sys.exit(run_entry_point((EvaluateArguments,), main,
                             prog="python -m training.evaluate", description=__doc__))

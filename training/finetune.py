"""LoRA (or full) fine-tuning of a causal LM, on Trainium with optimum-neuron or on CPU/CUDA.

Example (CPU, the tiny model from training.tiny):
    python -m training.tiny --model_dir /tmp/tiny --dataset_path /tmp/dolly.jsonl
    python -m training.finetune --model_name_or_path /tmp/tiny --dataset_path /tmp/dolly.jsonl \\
        --output_dir /tmp/run --backend cpu --max_steps 40 --max_seq_length 128 --learning_rate 3e-3

Example (trn1.32xlarge, a recipe plus overrides):
    torchrun --nproc_per_node 32 -m training.finetune training/recipes/llama3-8b-lora.yaml \\
        --model_name_or_path /fsx/models/Meta-Llama-3-8B --dataset_path /fsx/data/dolly.jsonl \\
        --output_dir /fsx/runs/llama3-lora

Re-running the same command resumes from the latest complete checkpoint in
--output_dir (HyperPod auto-resume does exactly that). With
NEURON_EXTRACT_GRAPHS_ONLY=1 (neuron_parallel_compile) the command runs a few
steps to extract graphs and writes no checkpoint or results.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.backends import BACKENDS, is_compile_pass
from training.errors import ArgumentError, require_dir, require_output_dir, require_path

logger = logging.getLogger("training.finetune")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")  # one is enough for AutoTokenizer
COMPILE_PASS_STEPS = 10  # enough to trace every graph of a step, the optimizer update and logging


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Local directory of the base model (safetensors + tokenizer)."})
    backend: str = field(default="auto", metadata={
        "help": "auto: neuron when /dev/neuron0 and optimum.neuron exist, else cuda if available, else cpu.",
        "choices": list(BACKENDS)})
    tensor_parallel_size: int = field(default=1, metadata={
        "help": "NeuronCores each model replica is sharded over (neuron backend; 8 for Llama-3-8B on trn1)."})
    full_finetune: bool = field(default=False, metadata={"help": "Train every weight instead of a LoRA adapter."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(default="q_proj,v_proj", metadata={
        "help": "Comma-separated module names that get LoRA adapters."})
    bf16: bool = field(default=False, metadata={
        "help": "bf16 training (bf16 weights on neuron/cuda, bf16 autocast on cpu)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass to save memory."})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ArgumentError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        _at_least(self, "tensor_parallel_size", 1)
        _at_least(self, "lora_r", 1)
        _at_least(self, "lora_alpha", 1)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ArgumentError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if isinstance(self.lora_target_modules, (list, tuple)):  # a YAML recipe may give a list
            self.lora_target_modules = ",".join(self.lora_target_modules)
        if not self.target_modules:
            raise ArgumentError("--lora_target_modules must name at least one module, e.g. q_proj,v_proj")
        model = require_dir("model_name_or_path", self.model_name_or_path,
                            "training reads a local model directory (nothing is fetched from a hub at run "
                            "time): download it first with python -m training.download --model_id ORG/NAME "
                            "--output_dir DIR and pass DIR")
        if not (model / "config.json").is_file():
            raise ArgumentError(f"--model_name_or_path {self.model_name_or_path}: no config.json, so not a "
                                "Hugging Face model directory; pass the directory training.download wrote")
        if not any((model / name).is_file() for name in TOKENIZER_FILES):
            raise ArgumentError(f"--model_name_or_path {self.model_name_or_path}: no tokenizer "
                                f"({' or '.join(TOKENIZER_FILES)}); download the whole model with training.download")
        if not self.full_finetune:
            _check_target_modules(model, self.target_modules)

    @property
    def target_modules(self) -> list[str]:
        return [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]


@dataclass
class DataArguments:
    dataset_path: str = field(metadata={
        "help": "A .json/.jsonl file, a directory of them, or a save_to_disk directory "
                "(dolly, alpaca or prompt/response columns)."})
    max_seq_length: int = field(default=2048, metadata={"help": "Tokens per packed training block."})
    eval_fraction: float = field(default=0.05, metadata={
        "help": "Share of examples held out for eval loss (0 disables eval)."})
    skip_bad_rows: bool = field(default=False, metadata={
        "help": "Skip rows with a missing, mistyped or empty field (and report how many) instead of failing."})

    def __post_init__(self) -> None:
        _at_least(self, "max_seq_length", 8)
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ArgumentError(f"--eval_fraction must be in [0, 1) (0 disables eval), got {self.eval_fraction}")
        require_path("dataset_path", self.dataset_path)


@dataclass
class TrainArguments:
    output_dir: str = field(metadata={"help": "Checkpoints, metrics.jsonl, loss.png, summary.json and the adapter."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; -1 trains for --num_train_epochs."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs, when --max_steps is -1."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Blocks per process per micro-step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimizer step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate."})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "transformers scheduler name."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    save_steps: int = field(default=100, metadata={"help": "Checkpoint every N optimizer steps."})
    save_total_limit: int | None = field(default=None, metadata={"help": "Keep only the newest N checkpoints."})
    logging_steps: int = field(default=10, metadata={"help": "Log metrics every N optimizer steps."})
    eval_steps: int | None = field(default=None, metadata={"help": "Eval every N steps (default: --save_steps)."})
    seed: int = field(default=42, metadata={"help": "Seed for data split, LoRA init and dropout."})
    resume: bool = field(default=True, metadata={
        "help": "Resume from the latest complete checkpoint-N in --output_dir, if any."})

    def __post_init__(self) -> None:
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            _at_least(self, name, 1)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ArgumentError(f"--max_steps must be -1 (train --num_train_epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ArgumentError(f"--num_train_epochs must be > 0 when --max_steps is -1, got {self.num_train_epochs}")
        if self.learning_rate <= 0:
            raise ArgumentError(f"--learning_rate must be > 0, got {self.learning_rate}")
        _at_least(self, "warmup_steps", 0)
        if self.eval_steps is not None:
            _at_least(self, "eval_steps", 1)
        if self.save_total_limit is not None:
            _at_least(self, "save_total_limit", 1)
        require_output_dir("output_dir", self.output_dir)


def _at_least(args: Any, name: str, low: int) -> None:
    if getattr(args, name) < low:
        raise ArgumentError(f"--{name} must be >= {low}, got {getattr(args, name)}")


def _check_target_modules(model_dir: Path, targets: list[str]) -> None:
    """Each LoRA target must name a module of the model (peft's rule: the module path ends with it), read
    from the safetensors headers, so a typo fails now rather than after the model has loaded."""
    from training.weights.shards_io import NoWeights, model_tensors

    try:
        names = model_tensors(model_dir)
    except NoWeights:  # no safetensors (e.g. .bin weights): transformers and peft will judge
        return
    modules = {name.rsplit(".", 1)[0] for name in names}
    for target in targets:
        if not any(m == target or m.endswith(f".{target}") for m in modules):
            leaves = sorted({m.rsplit(".", 1)[-1] for m in modules if not m.rsplit(".", 1)[-1].isdigit()})
            raise ArgumentError(f"--lora_target_modules: {model_dir} has no module named {target!r} "
                                f"(its modules: {', '.join(leaves)})")


ARGUMENT_TYPES = (ModelArguments, DataArguments, TrainArguments)


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint-N that has its trainer_state.json (written last), or None.

    A node lost mid-save leaves a checkpoint without it; resuming from that would fail,
    so the one before is used.
    """
    from training.checkpoints import newest_first

    candidates = newest_first(output_dir)
    for ckpt in candidates:
        if (ckpt / "trainer_state.json").exists():
            if ckpt != candidates[0]:
                logger.warning("%s is incomplete; resuming from %s", candidates[0], ckpt)
            return ckpt
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


def _sft_kwargs(data: DataArguments, train: TrainArguments, compile_pass: bool) -> dict[str, Any]:
    max_steps = train.max_steps
    if compile_pass:
        max_steps = COMPILE_PASS_STEPS if max_steps < 0 else min(max_steps, COMPILE_PASS_STEPS)
    return {
        "output_dir": train.output_dir,
        "max_steps": max_steps,
        "num_train_epochs": train.num_train_epochs,
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler_type,
        "warmup_steps": train.warmup_steps,
        "logging_steps": train.logging_steps,
        "logging_first_step": True,
        # the compile pass must not leave a checkpoint the real run would resume from
        "save_strategy": "no" if compile_pass else "steps",
        "save_steps": train.save_steps,
        "save_total_limit": train.save_total_limit,
        "eval_steps": train.eval_steps or train.save_steps,
        "seed": train.seed,
        "max_length": data.max_seq_length,
    }


def save_final(trainer: Any, tokenizer: Any, output_dir: Path, full_finetune: bool) -> list[str]:
    """The adapter (or full model) and tokenizer into output_dir itself, file by file by rename.

    The config file goes last: whoever sees adapter_config.json sees the weights too.
    """
    from training.fsio import move_files_into

    tmp = output_dir / f".final-{os.getpid()}"
    trainer.model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return move_files_into(tmp, output_dir, last=("config.json",) if full_finetune else ("adapter_config.json",))


def write_summary(path: Path, **fields: Any) -> dict[str, Any]:
    from training.fsio import write_json_atomic

    write_json_atomic(path, fields)
    return fields


def main(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict[str, Any] | None:
    """Train, then leave the process group on every rank (see `_leave_process_group`)."""
    finished = False
    try:
        summary = _train(model_args, data_args, train_args)
        finished = True
        return summary
    finally:
        _leave_process_group(wait_for_all=finished)


def _leave_process_group(wait_for_all: bool) -> None:
    """Close torch.distributed before the process exits.

    A rank that exits with its gloo group still open can abort ("terminate called
    without an active exception"), and torchrun then fails the whole job although
    training finished. After a good run every rank first waits for rank 0's final
    writes; after a failure nobody waits for ranks that may be gone.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait_for_all:
        dist.barrier()
    dist.destroy_process_group()


def _train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict[str, Any] | None:
    """Train; returns the summary on the main process (None elsewhere and in the compile pass)."""
    from transformers import AutoTokenizer, set_seed

    from training.backends import resolve_backend
    from training.data import prepare
    from training.lora import count_parameters, lora_config
    from training.metrics import (
        MetricsCallback,
        final_value,
        perplexity,
        plot_loss,
        read_metrics,
        truncate_metrics,
    )
    from training.trainers import TrainerParts, build_neuron_trainer, build_torch_trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backend = resolve_backend(model_args.backend)
    compile_pass = is_compile_pass()
    output_dir = Path(train_args.output_dir)
    set_seed(train_args.seed)

    summary_path = output_dir / "summary.json"
    checkpoint = None if compile_pass or not train_args.resume else latest_complete_checkpoint(output_dir)
    resumed_from = checkpoint_step(checkpoint) if checkpoint else 0
    if checkpoint and 0 < train_args.max_steps <= resumed_from and summary_path.exists():
        # a requeued job whose work is done: keep its results rather than redo the last save and evaluation
        logger.info("%s already reached max_steps=%d; nothing to do", checkpoint, train_args.max_steps)
        return json.loads(summary_path.read_text()) if os.environ.get("RANK", "0") == "0" else None
    if checkpoint and backend == "neuron":
        logger.warning("optimum-neuron 0.4.5 cannot resume a trainer from %s; training again from step 0 "
                       "(the checkpoint is left in place)", checkpoint)
        checkpoint, resumed_from = None, 0
    if checkpoint:
        logger.info("resuming from %s (step %d)", checkpoint, resumed_from)

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if tokenizer.pad_token is None:  # Llama 3 has none; pads are masked out of the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    data = prepare(data_args.dataset_path, tokenizer, data_args.max_seq_length, data_args.eval_fraction,
                   train_args.seed, data_args.skip_bad_rows)

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    tp = model_args.tensor_parallel_size if backend == "neuron" else 1
    if world_size % tp:
        raise ValueError(f"tensor_parallel_size={tp} does not divide the {world_size} processes")
    samples_per_step = train_args.per_device_train_batch_size * train_args.gradient_accumulation_steps * (
        world_size // tp)
    metrics_cb = MetricsCallback(output_dir, samples_per_step, data_args.max_seq_length)
    parts = TrainerParts(
        model_path=model_args.model_name_or_path,
        tokenizer=tokenizer,
        train_dataset=data.train,
        eval_dataset=data.eval,
        peft_config=None if model_args.full_finetune else lora_config(
            model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout, model_args.target_modules),
        callbacks=[metrics_cb],
        sft_kwargs={**_sft_kwargs(data_args, train_args, compile_pass),
                    "gradient_checkpointing": model_args.gradient_checkpointing},
        bf16=model_args.bf16,
    )
    if backend == "neuron":
        trainer = build_neuron_trainer(parts, model_args.tensor_parallel_size)
    else:
        trainer = build_torch_trainer(parts, backend)
    main_process = trainer.is_world_process_zero()
    metrics_path = output_dir / "metrics.jsonl"
    if main_process and not compile_pass:
        truncate_metrics(metrics_path, resumed_from)  # drop what the interrupted run logged after its checkpoint

    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if data.eval is not None and backend != "neuron" and not compile_pass:
        last_eval = final_value([r for r in read_metrics(metrics_path) if "eval_loss" in r], "step")
        if last_eval != trainer.state.global_step:
            trainer.evaluate()

    if compile_pass:
        logger.info("compile pass done (%d steps); no checkpoint or results written", trainer.state.global_step)
        return None
    if not main_process:
        return None
    if backend != "neuron":
        save_final(trainer, tokenizer, output_dir, model_args.full_finetune)
    plot_loss(metrics_path, output_dir / "loss.png",
              title=f"{Path(model_args.model_name_or_path).name}: "
                    f"{'full fine-tune' if model_args.full_finetune else 'LoRA'} ({backend})")
    records = read_metrics(metrics_path)
    trainable, total = count_parameters(trainer.model)
    final_loss, final_eval = final_value(records, "loss"), final_value(records, "eval_loss")
    summary = write_summary(
        summary_path,
        backend=backend,
        model_name_or_path=model_args.model_name_or_path,
        dataset_path=data_args.dataset_path,
        data_format=data.loaded.data_format,
        rows=data.loaded.rows,
        skipped_rows=data.loaded.skipped,
        train_blocks=len(data.train),
        eval_blocks=len(data.eval) if data.eval is not None else 0,
        max_seq_length=data_args.max_seq_length,
        full_finetune=model_args.full_finetune,
        lora=None if model_args.full_finetune else {
            "r": model_args.lora_r, "alpha": model_args.lora_alpha, "dropout": model_args.lora_dropout,
            "target_modules": model_args.target_modules},
        trainable_params=trainable,
        total_params=total,
        params_per_tensor_parallel_rank=tp > 1,
        world_size=world_size,
        tensor_parallel_size=tp,
        data_parallel_size=world_size // tp,
        samples_per_step=samples_per_step,
        steps=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        resumed_from_step=resumed_from,
        **metrics_cb.throughput(),
        final_train_loss=final_loss,
        final_eval_loss=final_eval,
        final_perplexity=None if final_loss is None else perplexity(final_loss),
        final_eval_perplexity=None if final_eval is None else perplexity(final_eval),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        args={**asdict(model_args), **asdict(data_args), **asdict(train_args)},
    )
    logger.info("done: %d steps, final loss %s, eval loss %s; results in %s",
                summary["steps"], final_loss, final_eval, output_dir)
    return summary


if __name__ == "__main__":
    import sys

    from training.cli import run_entry_point

    sys.exit(run_entry_point(ARGUMENT_TYPES, main, prog="python -m training.finetune", description=__doc__))

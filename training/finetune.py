"""LoRA (or full) fine-tuning of a causal LM, on Trainium with optimum-neuron or on CPU/CUDA.

Example (CPU, the tiny model from training.tiny):
    python -m training.tiny --model_dir /tmp/tiny --dataset_path /tmp/dolly.jsonl
    python -m training.finetune --model_name_or_path /tmp/tiny --dataset_path /tmp/dolly.jsonl \\
        --output_dir /tmp/run --backend cpu --max_steps 40 --max_seq_length 128 --learning_rate 3e-3

Example (trn1.32xlarge, a recipe plus overrides):
    torchrun --nproc_per_node 32 -m training.finetune training/recipes/llama3-8b-lora.yaml \\
        --model_name_or_path /fsx/models/Meta-Llama-3-8B --dataset_path /fsx/data/dolly.jsonl \\
        --output_dir /fsx/s3/runs/llama3-lora

Re-running the same command resumes from the latest complete checkpoint in
--output_dir (HyperPod auto-resume does exactly that). With
NEURON_EXTRACT_GRAPHS_ONLY=1 (neuron_parallel_compile) the command runs a few
steps to extract graphs and writes no checkpoint or results.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.backends import BACKENDS, is_compile_pass
from training.data import DataError, data_sources
from training.errors import (
    ArgumentError,
    UserError,
    require_at_least,
    require_dir,
    require_output_dir,
    require_path,
)

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
        require_at_least(self, "tensor_parallel_size", 1)
        require_at_least(self, "lora_r", 1)
        require_at_least(self, "lora_alpha", 1)
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
        "help": "Share of examples held out (listed in OUTPUT_DIR/heldout.json) for the eval loss and for "
                "training.evaluate; 0 holds out nothing."})
    skip_bad_rows: bool = field(default=False, metadata={
        "help": "Skip rows with a missing, mistyped or empty field (and report how many) instead of failing."})

    def __post_init__(self) -> None:
        require_at_least(self, "max_seq_length", 8)
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ArgumentError(f"--eval_fraction must be in [0, 1) (0 disables eval), got {self.eval_fraction}")
        require_path("dataset_path", self.dataset_path)
        try:
            data_sources(self.dataset_path)
        except DataError as err:
            raise ArgumentError(f"--dataset_path {err}") from None


@dataclass
class TrainArguments:
    output_dir: str = field(metadata={
        "help": "Checkpoints, metrics.jsonl, loss.png, summary.json, heldout.json (the eval split) and the adapter."})
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
            require_at_least(self, name, 1)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ArgumentError(f"--max_steps must be -1 (train --num_train_epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ArgumentError(f"--num_train_epochs must be > 0 when --max_steps is -1, got {self.num_train_epochs}")
        if self.learning_rate <= 0:
            raise ArgumentError(f"--learning_rate must be > 0, got {self.learning_rate}")
        require_at_least(self, "warmup_steps", 0)
        if self.eval_steps is not None:
            require_at_least(self, "eval_steps", 1)
        if self.save_total_limit is not None:
            require_at_least(self, "save_total_limit", 1)
        require_output_dir("output_dir", self.output_dir)


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


class RunSetupError(UserError):
    """Settings that cannot work together on this backend; the message says which to change."""


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest completely written checkpoint-N (training.checkpoints decides), or None.

    A node lost mid-save leaves a checkpoint without it; resuming from that would fail,
    so the one before is used.
    """
    from training.checkpoints import incomplete_reason, newest_first

    candidates = newest_first(output_dir)
    for ckpt in candidates:
        if incomplete_reason(ckpt) is None:
            if ckpt != candidates[0]:
                logger.warning("%s is incomplete; resuming from %s", candidates[0], ckpt)
            return ckpt
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


def _sft_kwargs(model: ModelArguments, data: DataArguments, train: TrainArguments,
                compile_pass: bool) -> dict[str, Any]:
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
        "gradient_checkpointing": model.gradient_checkpointing,
        # transformers' own default, said explicitly: NeuronSFTTrainer reads the key from this dict
        # and fails on None (optimum/neuron/trainers/sft_trainer.py, `"use_reentrant" not in ...`)
        "gradient_checkpointing_kwargs": {"use_reentrant": True} if model.gradient_checkpointing else None,
    }


def save_final(trainer: Any, tokenizer: Any, output_dir: Path, full_finetune: bool) -> list[str]:
    """The adapter (or full model) and tokenizer into output_dir itself, file by file by rename.

    The config file goes last: whoever sees adapter_config.json sees the weights too.
    """
    import tempfile

    from training.fsio import move_files_into

    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=output_dir))
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
    dist = sys.modules.get("torch.distributed")  # without torch loaded there is no group, nor a reason to load it
    if dist is None or not (dist.is_available() and dist.is_initialized()):
        return
    if wait_for_all:
        dist.barrier()
    dist.destroy_process_group()


@dataclass(frozen=True)
class Layout:
    """How the processes of the job are arranged."""

    world_size: int
    tensor_parallel_size: int

    @property
    def data_parallel_size(self) -> int:
        return self.world_size // self.tensor_parallel_size


def check_layout(backend: str, model_args: ModelArguments, data_args: DataArguments) -> Layout:
    """The job's layout, or RunSetupError before anything is loaded or written."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    tp = model_args.tensor_parallel_size if backend == "neuron" else 1
    if world_size % tp:
        raise RunSetupError(f"--tensor_parallel_size {tp} does not divide the {world_size} processes of this job; "
                            "choose a divisor of the process count")
    # optimum-neuron 0.4.5 turns sequence parallelism on unless disable_sequence_parallel is set, and
    # then scatters each block's tokens over the TP ranks (TrainingNeuronConfig, sequence_parallel_enabled)
    if tp > 1 and data_args.max_seq_length % tp:
        raise RunSetupError(f"--max_seq_length {data_args.max_seq_length} is not divisible by "
                            f"--tensor_parallel_size {tp}: sequence parallelism splits every block over the "
                            f"{tp} tensor-parallel ranks; use a multiple of {tp}")
    return Layout(world_size, tp)


def _run_args(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict[str, Any]:
    """The arguments as summary.json records them (JSON values)."""
    return json.loads(json.dumps({**asdict(model_args), **asdict(data_args), **asdict(train_args)}))


def finished_summary(output_dir: Path, args: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished run of exactly these arguments in `output_dir`, if there is one."""
    path = output_dir / "summary.json"
    if not path.is_file():
        return None
    summary: dict[str, Any] = json.loads(path.read_text())
    if summary.get("args") != args or summary.get("steps", 0) < summary.get("max_steps", 1):
        return None
    return summary


def prepare_output_dir(output_dir: Path, backend: str, resume: bool) -> Path | None:
    """The checkpoint to resume from, after putting `output_dir` in order (global rank 0 only writes).

    Incomplete checkpoints go first, so nothing is ever written into a half-written directory.
    A run that starts again from step 0 (the neuron backend, or --resume false) moves the old
    run's checkpoints aside, so consolidate never picks one that this run began to overwrite.
    """
    from training.backends import is_main_process
    from training.checkpoints import remove_incomplete, set_aside

    main_process = is_main_process()
    if main_process:
        for removed in remove_incomplete(output_dir):
            logger.warning("removed %s: it was not completely written", removed)
    checkpoint = latest_complete_checkpoint(output_dir) if resume else None
    if checkpoint and backend == "neuron":
        # optimum/neuron/trainers/transformers.py, NeuronTrainer._train: "`resume_from_checkpoint` is
        # not supported by the NeuronTrainer."
        if main_process:
            logger.warning("optimum-neuron 0.4.5 cannot resume a trainer from %s; training again from step 0",
                           checkpoint)
        checkpoint = None
    if checkpoint is None and main_process:
        kept = set_aside(output_dir)
        if kept is not None:
            logger.warning("the previous run's checkpoints are set aside; the newest is kept as %s", kept)
    if checkpoint:
        logger.info("resuming from %s (step %d)", checkpoint, checkpoint_step(checkpoint))
    return checkpoint


def _train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict[str, Any] | None:
    """Train; returns the summary on global rank 0 (None elsewhere and in the compile pass)."""
    from training.backends import is_main_process, resolve_backend

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if model_args.backend == "neuron":  # refuse impossible settings on any machine, before the device check
        check_layout("neuron", model_args, data_args)
    backend = resolve_backend(model_args.backend)
    layout = check_layout(backend, model_args, data_args)
    compile_pass = is_compile_pass()
    output_dir = Path(train_args.output_dir)
    run_args = _run_args(model_args, data_args, train_args)
    done = None if compile_pass else finished_summary(output_dir, run_args)
    if done is not None:
        # a requeued job whose work is done: keep its results rather than train again
        logger.info("%s already reached max_steps=%d; nothing to do", output_dir, done["max_steps"])
        return done if is_main_process() else None
    from transformers import set_seed  # the ML stack loads only once there is training to do

    set_seed(train_args.seed)
    checkpoint = None if compile_pass else prepare_output_dir(output_dir, backend, train_args.resume)
    resumed_from = checkpoint_step(checkpoint) if checkpoint else 0
    session = _start_session(backend, layout, model_args, data_args, train_args, compile_pass, resumed_from)
    session.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if compile_pass:
        logger.info("compile pass done (%d steps); no checkpoint or results written",
                    session.trainer.state.global_step)
        return None
    _final_eval(session, backend)
    if not is_main_process():
        return None
    return _finish(session, backend, layout, model_args, data_args, run_args, resumed_from)


@dataclass(frozen=True)
class Session:
    """A trainer ready to train, with what the end of the run reports on."""

    trainer: Any
    tokenizer: Any
    data: Any
    metrics: Any  # training.metrics.MetricsCallback


def _start_session(backend: str, layout: Layout, model_args: ModelArguments, data_args: DataArguments,
                   train_args: TrainArguments, compile_pass: bool, resumed_from: int) -> Session:
    from transformers import AutoTokenizer

    from training.backends import is_main_process
    from training.data import HELDOUT_FILE, prepare, write_heldout
    from training.lora import lora_config
    from training.metrics import MetricsCallback, truncate_metrics
    from training.trainers import TrainerParts, build_neuron_trainer, build_torch_trainer

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if tokenizer.pad_token is None:  # Llama 3 has none; pads are masked out of the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    data = prepare(data_args.dataset_path, tokenizer, data_args.max_seq_length, data_args.eval_fraction,
                   train_args.seed, data_args.skip_bad_rows)
    _log_plan(backend, layout, data, train_args)
    samples_per_step = (train_args.per_device_train_batch_size * train_args.gradient_accumulation_steps
                        * layout.data_parallel_size)
    main_process = is_main_process() and not compile_pass
    metrics_cb = MetricsCallback(Path(train_args.output_dir), samples_per_step, data_args.max_seq_length,
                                 main_process=main_process)
    parts = TrainerParts(
        model_path=model_args.model_name_or_path,
        tokenizer=tokenizer,
        train_dataset=data.train,
        eval_dataset=data.eval,
        peft_config=None if model_args.full_finetune else lora_config(
            model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout, model_args.target_modules),
        callbacks=[metrics_cb],
        sft_kwargs=_sft_kwargs(model_args, data_args, train_args, compile_pass),
        bf16=model_args.bf16,
    )
    if backend == "neuron":
        trainer = build_neuron_trainer(parts, layout.tensor_parallel_size)
    else:
        trainer = build_torch_trainer(parts, backend)
    if main_process:  # drop what the interrupted run logged after its checkpoint
        truncate_metrics(Path(train_args.output_dir) / "metrics.jsonl", resumed_from)
        if data.heldout.examples:  # before training: the neuron backend never evaluates, training.evaluate does
            write_heldout(Path(train_args.output_dir) / HELDOUT_FILE, data.heldout)
    return Session(trainer, tokenizer, data, metrics_cb)


def _log_plan(backend: str, layout: Layout, data: Any, train_args: TrainArguments) -> None:
    from training.plan import job_nodes, make_plan

    plan = make_plan(examples=data.loaded.rows - data.loaded.skipped, blocks=len(data.train),
                     data_parallel_size=layout.data_parallel_size,
                     batch_size=train_args.per_device_train_batch_size,
                     accumulation=train_args.gradient_accumulation_steps,
                     epochs=train_args.num_train_epochs, max_steps=train_args.max_steps)
    nodes = job_nodes() if backend == "neuron" else None
    logger.info("%s", plan.describe(nodes))


def _final_eval(session: Session, backend: str) -> None:
    """One more eval at the last step, unless the trainer just did one (the neuron backend does not evaluate)."""
    from training.metrics import final_value, read_metrics

    if session.data.eval is None or backend == "neuron":
        return
    records = read_metrics(session.metrics.path)
    if final_value([r for r in records if "eval_loss" in r], "step") != session.trainer.state.global_step:
        session.trainer.evaluate()


def _finish(session: Session, backend: str, layout: Layout, model_args: ModelArguments,
            data_args: DataArguments, run_args: dict[str, Any], resumed_from: int) -> dict[str, Any]:
    """Global rank 0's results: the adapter (torch backends), the loss plot and summary.json."""
    from training.metrics import plot_loss

    output_dir = session.metrics.path.parent
    if backend != "neuron":
        save_final(session.trainer, session.tokenizer, output_dir, model_args.full_finetune)
    plot_loss(session.metrics.path, output_dir / "loss.png",
              title=f"{Path(model_args.model_name_or_path).name}: "
                    f"{'full fine-tune' if model_args.full_finetune else 'LoRA'} ({backend})")
    summary = write_summary(output_dir / "summary.json",
                            **_summary_fields(session, backend, layout, model_args, data_args, resumed_from),
                            args=run_args)
    logger.info("done: %d steps, final loss %s, eval loss %s; results in %s",
                summary["steps"], summary["final_train_loss"], summary["final_eval_loss"], output_dir)
    return summary


def _summary_fields(session: Session, backend: str, layout: Layout, model_args: ModelArguments,
                    data_args: DataArguments, resumed_from: int) -> dict[str, Any]:
    from training.lora import count_parameters
    from training.metrics import final_value, perplexity, read_metrics

    data, trainer = session.data, session.trainer
    records = read_metrics(session.metrics.path)
    trainable, total = count_parameters(trainer.model)
    final_loss, final_eval = final_value(records, "loss"), final_value(records, "eval_loss")
    return {
        "backend": backend,
        "model_name_or_path": model_args.model_name_or_path,
        "dataset_path": data_args.dataset_path,
        "data_format": data.loaded.data_format,
        "rows": data.loaded.rows,
        "skipped_rows": data.loaded.skipped,
        "train_blocks": len(data.train),
        "eval_blocks": len(data.eval) if data.eval is not None else 0,
        "heldout_examples": len(data.heldout.examples),
        "max_seq_length": data_args.max_seq_length,
        "full_finetune": model_args.full_finetune,
        "lora": None if model_args.full_finetune else {
            "r": model_args.lora_r, "alpha": model_args.lora_alpha, "dropout": model_args.lora_dropout,
            "target_modules": model_args.target_modules},
        "trainable_params": trainable,
        "total_params": total,
        "params_per_tensor_parallel_rank": layout.tensor_parallel_size > 1,
        "world_size": layout.world_size,
        "tensor_parallel_size": layout.tensor_parallel_size,
        "data_parallel_size": layout.data_parallel_size,
        "samples_per_step": session.metrics.samples_per_step,
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "resumed_from_step": resumed_from,
        **session.metrics.throughput(),
        "final_train_loss": final_loss,
        "final_eval_loss": final_eval,
        "final_perplexity": None if final_loss is None else perplexity(final_loss),
        "final_eval_perplexity": None if final_eval is None else perplexity(final_eval),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


if __name__ == "__main__":
    from training.cli import run_entry_point

    sys.exit(run_entry_point(ARGUMENT_TYPES, main, prog="python -m training.finetune", description=__doc__))

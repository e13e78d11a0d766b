"""Benchmark: consolidate an 8-rank TP checkpoint and merge a LoRA adapter, against cp and peft.

    .venv/bin/python bench/consolidate_merge.py                 # 2.1 GB (make bench)
    .venv/bin/python bench/consolidate_merge.py --size 8b       # Llama-3-8B, 16 GB (make bench SIZE=8b)

Builds a Llama-3-shaped bf16 model (vocab 128256, GQA 32/8 heads; `small`: hidden 2048,
12 layers, ~2.1 GB; `8b`: Llama-3-8B's hidden 4096, intermediate 14336, 32 layers,
~16 GB), splits it into 8 tensor-parallel ranks as optimum-neuron saves them (built
one rank at a time, so the 8B build fits in a few GB of memory), then times each step
in its own subprocess, each right after `cp -r` of the same input, and reads its peak
RSS. Merges two adapters: LoRA on all seven linears of every layer (the worst case:
half the model's bytes change) and on q_proj + v_proj (the Llama-3-8B recipe's
targets). peft's merge runs at the small size only: it holds the whole model in
memory. Every timed command (cp too) starts with its input read once, so neither finds
a cache the other warmed. The checkpoint is built and consolidated first, then removed
and the base model built for the merges: about 2x the model's size must be free in
--scratch (3x with --keep; checked first). --before DIR adds rows for the tools as a
checkout of an older commit runs them, paired with the same cp. Prints a markdown
table and writes it to bench/results/consolidate_merge[-8b].md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
VOCAB, HEADS, KV, R, TP = 128256, 32, 8, 16, 8
ALL_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RECIPE_TARGETS = ("q_proj", "v_proj")  # training/recipes/llama3-8b-lora.yaml


@dataclass(frozen=True)
class Shape:
    """A Llama-3-shaped model's sizes (vocab and heads are Llama 3's)."""

    hidden: int
    intermediate: int
    layers: int


SIZES = {"small": Shape(hidden=2048, intermediate=5632, layers=12),
         "8b": Shape(hidden=4096, intermediate=14336, layers=32)}  # Meta-Llama-3-8B's config.json


def shapes(shape: Shape) -> list[tuple[str, tuple[int, ...]]]:
    h, inter, kv = shape.hidden, shape.intermediate, shape.hidden // HEADS * KV
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, h))]
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "mlp.gate_proj.weight", (inter, h)), (p + "mlp.up_proj.weight", (inter, h)),
                (p + "mlp.down_proj.weight", (h, inter))]
    return [*out, ("model.norm.weight", (h,)), ("lm_head.weight", (VOCAB, h))]


class Synthetic:
    """Random-looking bf16 weights made one rank's slice at a time: slice r of a tensor is a window of one
    random block chosen by (name, r), so the full tensor (the base model) and each rank's slice (the
    checkpoint) agree without the 16 GB model ever being in memory. The values only need to be finite."""

    def __init__(self) -> None:
        import torch

        generator = torch.Generator().manual_seed(0)
        self.block = (torch.randn(1 << 22, generator=generator) * 0.02).to(torch.bfloat16)

    def piece(self, name: str, rank: int, shape: tuple[int, ...]) -> torch.Tensor:
        import zlib

        numel = 1
        for d in shape:
            numel *= d
        start = zlib.crc32(f"{name}:{rank}".encode()) % (len(self.block) // 2)
        reps = -(-(numel + start) // len(self.block))
        return self.block.repeat(reps)[start:start + numel].view(shape)

    def slice_shape(self, shape: tuple[int, ...], dim: int | None) -> tuple[int, ...]:
        return shape if dim is None else tuple(d // TP if i == dim else d for i, d in enumerate(shape))


def _rank_slicer(shape: Shape) -> tuple[Synthetic, Callable[[str, tuple[int, ...], int], torch.Tensor]]:
    sys.path.insert(0, str(ROOT / "tests" / "checkpoints"))
    from shards_writer import partition_dim

    synth = Synthetic()

    def rank_slice(name: str, full: tuple[int, ...], rank: int) -> torch.Tensor:
        """What rank `rank` holds of `name` (gate/up are split as their fused gate_up_proj is)."""
        fused = name.replace(".gate_proj.", ".gate_up_proj.").replace(".up_proj.", ".gate_up_proj.")
        dim = partition_dim(fused)
        return synth.piece(name, 0 if dim is None else rank, synth.slice_shape(full, dim))

    return synth, rank_slice


def _model_config(shape: Shape) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=VOCAB, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                       num_hidden_layers=shape.layers, num_attention_heads=HEADS, num_key_value_heads=KV,
                       tie_word_embeddings=False, torch_dtype="bfloat16")


def build_base(scratch: Path, shape: Shape, adapters: dict[Path, tuple[str, ...]]) -> Path:
    """The base model dir (safetensors shards); `adapters` (dir -> target modules) are written beside it."""
    import torch

    from training.weights.shards_io import torch_rows, write_safetensors

    sys.path.insert(0, str(ROOT / "tests" / "checkpoints"))
    from shards_writer import partition_dim

    base = scratch / "base"
    base.mkdir(parents=True)
    _, rank_slice = _rank_slicer(shape)
    specs = shapes(shape)

    def full_parts(name: str, full: tuple[int, ...]) -> list[torch.Tensor]:
        fused = name.replace(".gate_proj.", ".gate_up_proj.").replace(".up_proj.", ".gate_up_proj.")
        dim = partition_dim(fused)
        if dim is None:
            return [rank_slice(name, full, 0)]
        slices = [rank_slice(name, full, r) for r in range(TP)]
        return slices if dim == 0 else [torch.cat(slices, dim=dim)]

    by_name = dict(specs)
    write_safetensors(base, [(n, s, "BF16") for n, s in specs],
                      lambda n: (torch_rows(t) for t in full_parts(n, by_name[n])),
                      desc="base model", max_shard_bytes=5 * 1024**3 if shape.layers > 12 else 1024**3)
    _model_config(shape).save_pretrained(base)
    for adapter, targets in adapters.items():
        write_adapter(adapter, base, shape, targets)
    return base


def build_checkpoint(scratch: Path, shape: Shape) -> Path:
    """The 8-rank TP checkpoint of the same model as build_base's (one rank in memory at a time)."""
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "checkpoints"))
    from shards_writer import metadata

    ckpt = scratch / "run" / "checkpoint-100"
    _, rank_slice = _rank_slicer(shape)
    specs = shapes(shape)
    by_name = dict(specs)
    shards = ckpt / "shards"
    (shards / "model").mkdir(parents=True)
    fused_names = [n.replace(".gate_proj.", ".gate_up_proj.") for n, _ in specs if ".up_proj." not in n]
    (shards / "mp_metadata_pp_rank_0.json").write_text(
        json.dumps(metadata(fused_names, TP, None, shape.intermediate), indent=4))
    for rank in range(TP):
        state = {}
        for n, full in specs:
            if ".up_proj." in n:
                continue
            if ".gate_proj." in n:
                up = n.replace(".gate_proj.", ".up_proj.")
                state[n.replace(".gate_proj.", ".gate_up_proj.")] = torch.cat(
                    [rank_slice(n, full, rank), rank_slice(up, by_name[up], rank)])
            else:
                state[n] = rank_slice(n, full, rank).clone()
        torch.save(state, shards / "model" / f"dp_rank_00_tp_rank_{rank:02d}_pp_rank_00.pt")
        del state
    (shards / "done").write_text("")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 100}))
    _model_config(shape).save_pretrained(ckpt)
    return ckpt


def write_adapter(adapter: Path, base: Path, shape: Shape, targets: tuple[str, ...]) -> None:
    """A peft adapter of rank R with random A and B on `targets` of every layer."""
    import torch
    from safetensors.torch import save_file

    adapter.mkdir()
    lora = {}
    for n, (rows, cols) in ((n, s) for n, s in shapes(shape) if n.endswith(tuple(f"{t}.weight" for t in targets))):
        module = n.removesuffix(".weight")
        lora[f"base_model.model.{module}.lora_A.weight"] = torch.randn(R, cols) * 0.01
        lora[f"base_model.model.{module}.lora_B.weight"] = torch.randn(rows, R) * 0.01
    save_file(lora, adapter / "adapter_model.safetensors")
    (adapter / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R, "lora_alpha": 32, "lora_dropout": 0.0, "bias": "none",
        "target_modules": list(targets), "base_model_name_or_path": str(base), "fan_in_fan_out": False}))


PEFT_SCRIPT = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16)
PeftModel.from_pretrained(m, sys.argv[2]).merge_and_unload().save_pretrained(sys.argv[3], max_shard_size="5GB")
"""


def warm(path: Path) -> None:
    """Read every file under `path` once, so the timed command finds its input in the page cache as far as
    memory holds it, whichever command ran before it: cp and the tool start from the same cache."""
    buffer = bytearray(16 * 1024**2)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(file, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def measure(cmd: list[str], output: Path, source: Path, cwd: Path = ROOT) -> tuple[float, float, float]:
    """(seconds, peak RSS in bytes, CPU seconds: user + system) of `cmd` and a `sync` after it (the bytes on
    disk, not in the page cache), run in a fresh child that only waits for it. `output` is removed and dirty
    pages are flushed first, so no run pays for the writeback of the one before, and its input `source` is
    read once. The CPU is the command's own; the kernel's writeback threads are charged to no one."""
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    warm(source)
    probe = ("import os, resource, subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:],"
             " check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); os.sync(); "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(time.perf_counter() - t, u.ru_maxrss * 1024, u.ru_utime + u.ru_stime)")
    out = subprocess.run([PY, "-c", probe, *cmd], check=True, capture_output=True, text=True, cwd=cwd).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


@dataclass
class Row:
    step: str
    output: Path
    cmd: list[str]
    cwd: Path = ROOT  # the source tree whose `training` package runs (--before: an older one)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    cp_seconds: list[float] = field(default_factory=list)
    cp_cpu_seconds: list[float] = field(default_factory=list)
    rss: float = 0.0
    output_bytes: int = 0


def run_rounds(groups: list[tuple[Path, list[Row]]], rounds: int, scratch: Path) -> None:
    """Each round times a `cp -r` of each group's input, then each step of the group, so the pair sees the
    same machine state: on a shared VM the same cp takes 0.6 s one minute and 4 s the next, so only paired
    ratios and medians mean anything. Each output is removed once measured, so the disk holds one at a time."""
    copy = scratch / "cp-copy"
    for _ in range(rounds):
        for cp_source, rows in groups:
            cp_seconds, _, cp_cpu = measure(["cp", "-r", str(cp_source), str(copy)], copy, cp_source)
            shutil.rmtree(copy)
            for row in rows:
                secs, rss, cpu = measure(row.cmd, row.output, cp_source, row.cwd)
                row.cp_seconds.append(cp_seconds)
                row.cp_cpu_seconds.append(cp_cpu)
                row.seconds.append(secs)
                row.cpu_seconds.append(cpu)
                row.rss = max(row.rss, rss)
                row.output_bytes = dir_bytes(row.output) if row.output.exists() else 0
                shutil.rmtree(row.output, ignore_errors=True)


def _commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or str(tree)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_bytes(shape: Shape) -> int:
    total = 0
    for _, dims in shapes(shape):
        n = 2
        for d in dims:
            n *= d
        total += n
    return total


def check_disk(scratch: Path, shape: Shape, copies: int) -> None:
    """`copies` times the model, plus 5%: the input of a step (the checkpoint, then the base model) and one
    output at a time; with --keep, the base model and the checkpoint both stay."""
    need = int(model_bytes(shape) * copies * 1.05)
    probe = scratch if scratch.exists() else next(p for p in scratch.parents if p.exists())
    free = shutil.disk_usage(probe).free
    print(f"bench: needs {need / 1e9:.0f} GB free in {scratch} ({free / 1e9:.0f} GB free)", file=sys.stderr)
    if free < need:
        sys.exit(f"error: --scratch {scratch}: {free / 1e9:.0f} GB free, the benchmark needs {need / 1e9:.0f} GB "
                 f"({copies}x the {model_bytes(shape) / 1e9:.1f} GB model); free space or pass --scratch on a "
                 "larger disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="model shape (8b: Llama-3-8B)")
    parser.add_argument("--layers", type=int, help="decoder layers instead of the size's own (to fit a disk)")
    parser.add_argument("--rounds", type=int, help="timed runs of each step, the median reported (5; 8b: 3)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-consolidate-merge"), help="scratch dir")
    parser.add_argument("--keep", action="store_true", help="leave the model, checkpoint and adapters in --scratch "
                        "(to profile a step by hand)")
    parser.add_argument("--before", type=Path, help="also time consolidate and merge as a checkout of an older "
                        "commit runs them (e.g. `git worktree add /tmp/before <commit>`), paired with the same cp")
    args = parser.parse_args()
    shape = SIZES[args.size]
    if args.layers is not None:
        shape = Shape(shape.hidden, shape.intermediate, args.layers)
    rounds = args.rounds or (5 if args.size == "small" else 3)
    with_peft = args.size == "small"  # peft loads the whole model into memory: 16+ GB at 8b
    s = args.scratch
    if s.exists():
        shutil.rmtree(s)
    check_disk(s, shape, 3 if args.keep else 2)
    adapters = {s / "adapter-all": ALL_LINEARS, s / "adapter-qv": RECIPE_TARGETS}
    before = f" (before: {_commit(args.before)})" if args.before else ""

    def with_before(row: Row) -> list[Row]:
        if args.before is None:
            return [row]
        return [row, Row(row.step + before, row.output, row.cmd, args.before.resolve())]

    try:
        ckpt = build_checkpoint(s, shape)
        consolidate = Row("consolidate (8 TP ranks -> model)", s / "consolidated",
                          [PY, "-m", "training.consolidate", "--checkpoint_dir", str(s / "run"), "--output_dir",
                           str(s / "consolidated")])
        consolidated = with_before(consolidate)
        run_rounds([(ckpt / "shards", consolidated)], rounds, s)
        if not args.keep:
            shutil.rmtree(s / "run")
        base = build_base(s, shape, adapters)
        steps = [Row("`python -c 'import torch'` alone: the floor of any merge that uses torch's kernels",
                     s / "none", [PY, "-c", "import torch"])]
        for adapter, targets in adapters.items():
            label = "+".join(t.removesuffix("_proj") for t in targets)
            out = s / f"merged-{adapter.name}"
            steps += with_before(Row(f"merge, LoRA on {label}", out, [
                PY, "-m", "training.merge", "--base_model_path", str(base), "--adapter_path", str(adapter),
                "--output_dir", str(out)]))
            if with_peft:
                out = s / f"peft-{adapter.name}"
                steps.append(Row(f"peft merge, LoRA on {label} (load + merge_and_unload + save_pretrained)", out,
                                 [PY, "-c", PEFT_SCRIPT, str(base), str(adapter), str(out)]))
        run_rounds([(base, steps)], rounds, s)
        table = [*consolidated, *steps]
    finally:
        if not args.keep:
            shutil.rmtree(s, ignore_errors=True)
    largest = VOCAB * shape.hidden * 2
    peft_rss = max((row.rss for row in table if row.step.startswith("peft")), default=0.0)
    lines = [f"Synthetic Llama-3-shaped bf16 model ({args.size}: hidden {shape.hidden}, intermediate "
             f"{shape.intermediate}, {shape.layers} layers, {model_bytes(shape) / 1e9:.1f} GB); largest tensor "
             f"{largest / 1e6:.0f} MB (embed_tokens / lm_head, {VOCAB}x{shape.hidden}). Median of {rounds} runs, "
             f"each timed to the end of a `sync`, each started with its input read once (the page cache as warm "
             f"for cp as for the tool). vs cp: the median over runs of (`cp -r` of the same input on the "
             f"same disk, then `sync`, timed just before the run) / (the run); RSS / peft against peft's largest "
             f"peak" + ("." if with_peft else " (peft not run at this size: it holds the whole model in memory).") +
             f" CPU: the command's user + system seconds (median), beside its paired cp's; {os.cpu_count()} cores.",
             "", "| step | output GB | seconds | MB/s | vs cp | CPU s (cp's) | peak RSS GB | RSS / largest tensor "
             "| RSS / peft |", "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        secs = statistics.median(row.seconds)
        vs_cp = statistics.median(cp / t for cp, t in zip(row.cp_seconds, row.seconds, strict=True))
        rate = f"{row.output_bytes / secs / 1e6:.0f}" if row.output_bytes else "-"
        vs_peft = f"{row.rss / peft_rss:.2f}" if peft_rss else "-"
        lines.append(f"| {row.step} | {row.output_bytes / 1e9:.2f} | {secs:.1f} | {rate} | "
                     f"{vs_cp:.2f} | {statistics.median(row.cpu_seconds):.1f} "
                     f"({statistics.median(row.cp_cpu_seconds):.1f}) | {row.rss / 1e9:.2f} | {row.rss / largest:.1f}x | {vs_peft} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    name = "consolidate_merge" + ("" if args.size == "small" else f"-{args.size}") + \
        ("" if args.layers is None else f"-{args.layers}layers") + ".md"
    (results / name).write_text("# Consolidate and merge benchmark\n\n" + text)


if __name__ == "__main__":
    main()

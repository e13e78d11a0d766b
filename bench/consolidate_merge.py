"""Benchmark: consolidate an 8-rank TP checkpoint and merge a LoRA adapter, against cp and peft.

    .venv/bin/python bench/consolidate_merge.py --layers 12 --scratch /tmp/bench-cm

Builds a Llama-3-shaped bf16 model (vocab 128256, hidden 2048, GQA 32/8 heads; 12
layers is ~2.1 GB), splits it into 8 tensor-parallel ranks as optimum-neuron saves
them, then times each step in its own subprocess and reads its peak RSS. Merges two
adapters: LoRA on all seven linears of every layer (the worst case: half the model's
bytes change) and on q_proj + v_proj (the Llama-3-8B recipe's targets). Prints a
markdown table and writes it to bench/results/consolidate_merge.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
HIDDEN, INTER, VOCAB, HEADS, KV, R = 2048, 5632, 128256, 32, 8, 16
ALL_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RECIPE_TARGETS = ("q_proj", "v_proj")  # training/recipes/llama3-8b-lora.yaml


def shapes(layers: int) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    kv = HIDDEN // HEADS * KV
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (HIDDEN,)), (p + "post_attention_layernorm.weight", (HIDDEN,)),
                (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)), (p + "self_attn.k_proj.weight", (kv, HIDDEN)),
                (p + "self_attn.v_proj.weight", (kv, HIDDEN)), (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
                (p + "mlp.gate_proj.weight", (INTER, HIDDEN)), (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, INTER))]
    return [*out, ("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]


def build(scratch: Path, layers: int, adapters: dict[Path, tuple[str, ...]]) -> tuple[Path, Path]:
    """Base model dir and 8-rank checkpoint; `adapters` (dir -> target modules) are written beside them."""
    import torch
    from transformers import LlamaConfig

    sys.path.insert(0, str(ROOT / "tests" / "checkpoints"))
    from shards_writer import write_sharded

    from training.weights.shards_io import dtype_code, torch_rows, write_safetensors

    base, ckpt = scratch / "base", scratch / "run" / "checkpoint-100"
    base.mkdir(parents=True)
    torch.manual_seed(0)
    state = {n: (torch.randn(s) * 0.02).to(torch.bfloat16) for n, s in shapes(layers)}
    specs = [(n, tuple(t.shape), dtype_code(t.dtype)) for n, t in state.items()]
    rows = {n: [torch_rows(t)] for n, t in state.items()}
    write_safetensors(base, specs, rows.__getitem__, desc="base model", max_shard_bytes=1024**3)
    del rows
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=layers,
                         num_attention_heads=HEADS, num_key_value_heads=KV, tie_word_embeddings=False,
                         torch_dtype="bfloat16")
    config.save_pretrained(base)
    write_sharded(ckpt, state)
    shutil.copy2(base / "config.json", ckpt / "config.json")
    del state
    for adapter, targets in adapters.items():
        write_adapter(adapter, base, layers, targets)
    return base, ckpt


def write_adapter(adapter: Path, base: Path, layers: int, targets: tuple[str, ...]) -> None:
    """A peft adapter of rank R with random A and B on `targets` of every layer."""
    import torch
    from safetensors.torch import save_file

    adapter.mkdir()
    lora = {}
    for n, (rows, cols) in ((n, s) for n, s in shapes(layers) if n.endswith(tuple(f"{t}.weight" for t in targets))):
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


def measure(cmd: list[str], output: Path) -> tuple[float, float]:
    """(seconds, peak RSS in bytes) of `cmd` run in a fresh child that only waits for it. `output` is removed
    and dirty pages are flushed first, so no run pays for the writeback of the one before."""
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True,"
             " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    out = subprocess.run([PY, "-c", probe, *cmd], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[0]), float(out[1])


@dataclass
class Row:
    step: str
    output: Path
    seconds: list[float] = field(default_factory=list)
    cp_seconds: list[float] = field(default_factory=list)
    rss: float = 0.0


def run_rounds(rows: list[tuple[Row, list[str], Path]], rounds: int, scratch: Path) -> None:
    """Each round times every step right after a `cp -r` of its input, so the pair sees the same machine
    state: on a shared VM the same cp takes 0.6 s one minute and 4 s the next, so only paired ratios and
    medians mean anything."""
    for _ in range(rounds):
        for row, cmd, cp_source in rows:
            row.cp_seconds.append(measure(["cp", "-r", str(cp_source), str(scratch / "cp-copy")], scratch / "cp-copy")[0])
            secs, rss = measure(cmd, row.output)
            row.seconds.append(secs)
            row.rss = max(row.rss, rss)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12, help="decoder layers (12 gives ~2.1 GB in bf16)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each step (the median is reported)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-consolidate-merge"), help="scratch dir")
    args = parser.parse_args()
    s = args.scratch
    if s.exists():
        shutil.rmtree(s)
    adapters = {s / "adapter-all": ALL_LINEARS, s / "adapter-qv": RECIPE_TARGETS}
    try:
        base, ckpt = build(s, args.layers, adapters)
        consolidate = Row("consolidate (8 TP ranks -> model)", s / "consolidated")
        run_rounds([(consolidate, [PY, "-m", "training.consolidate", "--checkpoint_dir", str(s / "run"),
                                   "--output_dir", str(consolidate.output)], ckpt / "shards")], args.rounds, s)
        floor = Row("`python -c 'import torch'` alone: the floor of any merge that uses torch's kernels", s / "none")
        steps: list[tuple[Row, list[str], Path]] = [(floor, [PY, "-c", "import torch"], base)]
        for adapter, targets in adapters.items():
            label = "+".join(t.removesuffix("_proj") for t in targets)
            ours, peft = Row(f"merge, LoRA on {label}", s / f"merged-{adapter.name}"), \
                Row(f"peft merge, LoRA on {label} (load + merge_and_unload + save_pretrained)", s / f"peft-{adapter.name}")
            steps += [(ours, [PY, "-m", "training.merge", "--base_model_path", str(base), "--adapter_path", str(adapter),
                              "--output_dir", str(ours.output)], base),
                      (peft, [PY, "-c", PEFT_SCRIPT, str(base), str(adapter), str(peft.output)], base)]
        run_rounds(steps, args.rounds, s)
        table = [consolidate, *(row for row, _, _ in steps)]
        sizes = {row.step: dir_bytes(row.output) if row.output.exists() else 0 for row in table}
    finally:
        shutil.rmtree(s, ignore_errors=True)
    largest = VOCAB * HIDDEN * 2
    peft_rss = max(row.rss for row in table if row.step.startswith("peft"))
    lines = [f"Synthetic Llama-3-shaped bf16 model, {args.layers} layers; largest tensor {largest / 1e6:.0f} MB "
             f"(embed_tokens / lm_head, {VOCAB}x{HIDDEN}). Median of {args.rounds} runs. vs cp: the median over runs "
             f"of (`cp -r` of the same input on the same disk, timed just before the run) / (the run); "
             f"RSS / peft against peft's largest peak.", "",
             "| step | output GB | seconds | MB/s | vs cp | peak RSS GB | RSS / largest tensor | RSS / peft |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table:
        secs = statistics.median(row.seconds)
        vs_cp = statistics.median(cp / t for cp, t in zip(row.cp_seconds, row.seconds, strict=True))
        rate = f"{sizes[row.step] / secs / 1e6:.0f}" if sizes[row.step] else "-"
        lines.append(f"| {row.step} | {sizes[row.step] / 1e9:.2f} | {secs:.1f} | {rate} | "
                     f"{vs_cp:.2f} | {row.rss / 1e9:.2f} | {row.rss / largest:.1f}x | {row.rss / peft_rss:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "consolidate_merge.md").write_text("# Consolidate and merge benchmark\n\n" + text)


if __name__ == "__main__":
    main()

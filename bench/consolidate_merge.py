"""Benchmark: consolidate an 8-rank TP checkpoint and merge a LoRA adapter, against cp and peft.

    .venv/bin/python bench/consolidate_merge.py --layers 12 --scratch /tmp/bench-cm

Builds a Llama-3-shaped bf16 model (vocab 128256, hidden 2048, GQA 32/8 heads; 12
layers is ~2.1 GB), splits it into 8 tensor-parallel ranks as optimum-neuron saves
them, then times each step in its own subprocess and reads its peak RSS. Prints a
markdown table and writes it to bench/results/consolidate_merge.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
HIDDEN, INTER, VOCAB, HEADS, KV, R = 2048, 5632, 128256, 32, 8, 16


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


def build(scratch: Path, layers: int) -> tuple[Path, Path, Path]:
    """Base model dir, 8-rank checkpoint, adapter dir."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    sys.path.insert(0, str(ROOT / "tests" / "checkpoints"))
    from shards_writer import write_sharded

    from training.shards_io import SafetensorsStream, plan_shards, shard_names, write_index

    base, ckpt, adapter = scratch / "base", scratch / "run" / "checkpoint-100", scratch / "adapter"
    base.mkdir(parents=True)
    torch.manual_seed(0)
    state = {n: (torch.randn(s) * 0.02).to(torch.bfloat16) for n, s in shapes(layers)}
    specs = [(n, tuple(t.shape), t.dtype) for n, t in state.items()]
    groups = plan_shards(specs, 1024**3)
    weight_map = {}
    for group, name in zip(groups, shard_names(len(groups)), strict=True):
        stream = SafetensorsStream(base / name, group)
        for n, _, _ in group:
            stream.append(n, state[n])
            weight_map[n] = name
        stream.close()
    write_index(base / "model.safetensors.index.json", weight_map, sum(t.numel() * 2 for t in state.values()))
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=layers,
                         num_attention_heads=HEADS, num_key_value_heads=KV, tie_word_embeddings=False,
                         torch_dtype="bfloat16")
    config.save_pretrained(base)
    write_sharded(ckpt, state)
    shutil.copy2(base / "config.json", ckpt / "config.json")
    del state
    adapter.mkdir()
    lora = {}
    for n, (rows, cols) in ((n, s) for n, s in shapes(layers) if n.endswith("proj.weight")):
        module = n.removesuffix(".weight")
        lora[f"base_model.model.{module}.lora_A.weight"] = torch.randn(R, cols) * 0.01
        lora[f"base_model.model.{module}.lora_B.weight"] = torch.randn(rows, R) * 0.01
    save_file(lora, adapter / "adapter_model.safetensors")
    (adapter / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R, "lora_alpha": 32, "lora_dropout": 0.0, "bias": "none",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "base_model_name_or_path": str(base), "fan_in_fan_out": False}))
    return base, ckpt, adapter


PEFT_SCRIPT = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16)
PeftModel.from_pretrained(m, sys.argv[2]).merge_and_unload().save_pretrained(sys.argv[3], max_shard_size="5GB")
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in bytes) of `cmd` run in a fresh child that only waits for it."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True,"
             " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    out = subprocess.run([PY, "-c", probe, *cmd], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[0]), float(out[1])


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12, help="decoder layers (12 gives ~2.1 GB in bf16)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-consolidate-merge"), help="scratch dir")
    args = parser.parse_args()
    if args.scratch.exists():
        shutil.rmtree(args.scratch)
    try:
        base, ckpt, adapter = build(args.scratch, args.layers)
        largest = VOCAB * HIDDEN * 2
        s = args.scratch
        rows = []
        t_cp, _ = measure(["cp", "-r", str(ckpt / "shards"), str(s / "cp-shards")])
        t, rss = measure([PY, "-m", "training.consolidate", "--checkpoint_dir", str(s / "run"),
                          "--output_dir", str(s / "consolidated")])
        size = dir_bytes(s / "consolidated")
        rows.append(("consolidate (8 TP ranks -> model)", size, t, rss, t_cp))
        t_cp, _ = measure(["cp", "-r", str(base), str(s / "cp-base")])
        t, rss = measure([PY, "-m", "training.merge", "--base_model_path", str(s / "consolidated"),
                          "--adapter_path", str(adapter), "--output_dir", str(s / "merged")])
        rows.append(("merge (training.merge)", dir_bytes(s / "merged"), t, rss, t_cp))
        t_p, rss_p = measure([PY, "-c", PEFT_SCRIPT, str(base), str(adapter), str(s / "peft-merged")])
        rows.append(("merge (peft load + merge_and_unload + save_pretrained)", dir_bytes(s / "peft-merged"), t_p, rss_p, t_cp))
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    table = [f"Largest tensor: {largest / 1e6:.0f} MB (embed_tokens / lm_head, {VOCAB}x{HIDDEN} bf16). "
             f"cp: `cp -r` of the same input on the same disk ({args.scratch}).", "",
             "| step | output GB | seconds | MB/s | vs cp | peak RSS GB | RSS / largest tensor | RSS / peft |",
             "|---|---|---|---|---|---|---|---|"]
    for name, nbytes, secs, rss, cp in rows:
        table.append(f"| {name} | {nbytes / 1e9:.2f} | {secs:.1f} | {nbytes / secs / 1e6:.0f} | {cp / secs:.2f} | "
                     f"{rss / 1e9:.2f} | {rss / largest:.1f}x | {rss / rss_p:.2f} |")
    text = "\n".join(table) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "consolidate_merge.md").write_text("# Consolidate and merge benchmark\n\n" + text)


if __name__ == "__main__":
    main()

"""A finished run directory as the chain leaves it (train/, evaluation.json, logs/), written by hand
so the report's content can be checked against known numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STEPS = ("env", "download", "compile", "train", "consolidate", "merge", "evaluate", "generate")
# (job id, nodes, seconds) per step; the report job itself is 109, still running when it reads the logs
JOBS = {step: (101 + i, 2 if step in ("compile", "train") else 1, 60 * (i + 1)) for i, step in enumerate(STEPS)}

GENERATIONS = [
    {"instruction": "What is the capital of Peru?", "context": "", "reference": "The capital of Peru is Lima.",
     "base": "jumps <owl> | lazy", "merged": "The capital of Peru is Lima."},
    {"instruction": "What colour is the animal in the text?", "context": "I saw a red fox in the garden today.",
     "reference": "The fox is red.", "base": "garden garden", "merged": "The fox is red."},
]


def summary(backend: str) -> dict[str, Any]:
    return {
        "backend": backend, "model_name_or_path": "/fsx/models/Meta-Llama-3-8B", "dataset_path": "/fsx/s3/dolly",
        "data_format": "dolly", "rows": 15011, "steps": 300, "max_steps": 300, "session_steps": 300,
        "trainable_params": 6815744, "total_params": 8037076992, "params_per_tensor_parallel_rank": False,
        "world_size": 64 if backend == "neuron" else 2, "tensor_parallel_size": 8 if backend == "neuron" else 1,
        "data_parallel_size": 8 if backend == "neuron" else 2, "full_finetune": False,
        "samples_per_second": 7.4, "tokens_per_second": 15155.2, "wall_time_s": 1234.5,
        "final_train_loss": 1.2345, "final_eval_loss": None if backend == "neuron" else 1.4567,
    }


EVALUATION = {
    "device": "cpu", "cpu_threads": 128, "seconds": 42.5,
    "heldout": {"path": "x/heldout.json", "examples": 750, "examples_scored": 64, "max_seq_length": 2048,
                "dataset_path": "/fsx/s3/dolly", "seed": 42, "eval_fraction": 0.05},
    "models": {
        "base": {"path": "/fsx/models/base", "dtype": "bfloat16", "loss": 6.3111, "perplexity": 550.64,
                 "tokens": 9876, "seconds": {"load": 1, "score": 2, "generate": 3, "total": 6.0}},
        "merged": {"path": "/fsx/s3/runs/r/merged", "dtype": "bfloat16", "loss": 0.4321, "perplexity": 1.54,
                   "tokens": 9876, "seconds": {"load": 1, "score": 2, "generate": 3, "total": 6.0}},
    },
    "generations": GENERATIONS,
}


def write_run(run_dir: Path, backend: str = "cpu", evaluation: bool = True) -> Path:
    train = run_dir / "train"
    train.mkdir(parents=True)
    (train / "summary.json").write_text(json.dumps(summary(backend)))
    records = [{"step": s, "loss": 6.0 / s} for s in range(1, 301, 10)]
    records += [{"step": s, "eval_loss": 6.5 / s} for s in (100, 200, 300)]
    (train / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if evaluation:
        (run_dir / "evaluation.json").write_text(json.dumps(EVALUATION))
    logs = run_dir / "logs"
    logs.mkdir()
    (logs / "lora-train-7.out").write_text("an older run's train job\n")  # the newest job of a step counts
    for step, (job, nodes, seconds) in JOBS.items():
        (logs / f"lora-{step}-{job}.out").write_text(
            f"[10:00:00] START {step}: job {job} on node[1-{nodes}] ({nodes} node(s)), backend {backend}\n"
            f"[10:00:01] END {step}: job {job} succeeded in {seconds} s\n")
    (logs / "lora-report-109.out").write_text("[10:30:00] START report: job 109 on node1 (1 node(s))\n")
    return run_dir

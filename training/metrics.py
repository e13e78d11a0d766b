"""Training metrics: JSON lines, CloudWatch-readable log lines, the loss plot and the run summary.

Each log step becomes one line of `metrics.jsonl` and one stdout line like

    METRICS step=20 loss=1.8734 perplexity=6.5111 learning_rate=0.0001 samples_per_second=12.5 tokens_per_second=6400.0

(eval steps print `eval_loss=` and `eval_perplexity=`). A CloudWatch metric
filter or a SageMaker metric definition extracts one value per regex:

    METRICS .*\\bloss=([0-9.eE+-]+)          train loss
    METRICS .*\\beval_loss=([0-9.eE+-]+)     eval loss
    METRICS .*\\btokens_per_second=([0-9.eE+-]+)

`\\b` keeps `loss=` from matching inside `eval_loss=` (`_` is a word character).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.fsio import write_text_atomic

LOG_PREFIX = "METRICS"
METRIC_REGEX = {
    "loss": r"METRICS .*\bloss=([0-9.eE+-]+)",
    "eval_loss": r"METRICS .*\beval_loss=([0-9.eE+-]+)",
    "perplexity": r"METRICS .*\bperplexity=([0-9.eE+-]+)",
    "samples_per_second": r"METRICS .*\bsamples_per_second=([0-9.eE+-]+)",
    "tokens_per_second": r"METRICS .*\btokens_per_second=([0-9.eE+-]+)",
}
_KEYS = ("loss", "perplexity", "eval_loss", "eval_perplexity", "learning_rate", "grad_norm",
         "samples_per_second", "tokens_per_second")


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run logs a large number instead of overflowing."""
    return math.exp(min(loss, 50.0))


def format_log_line(record: dict[str, Any]) -> str:
    fields = [f"step={record['step']}"]
    fields += [f"{k}={record[k]:.6g}" for k in _KEYS if isinstance(record.get(k), (int, float))]
    return f"{LOG_PREFIX} " + " ".join(fields)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records after `last_step`: the steps a resumed run is about to redo."""
    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


class MetricsCallback(TrainerCallback):
    """Writes metrics.jsonl and METRICS log lines on the main process, and measures throughput.

    Throughput is counted from optimizer steps, not from the trainer's own numbers,
    because those count the steps a resumed run skipped as if it had done them.
    """

    def __init__(self, output_dir: Path, samples_per_step: int, tokens_per_sample: int, *,
                 main_process: bool) -> None:
        self.path = output_dir / "metrics.jsonl"
        # decided by the caller from the global rank: optimum-neuron's state.is_world_process_zero is
        # True on every rank of a multi-node job (see training.backends.global_rank)
        self.main_process = main_process
        self.samples_per_step = samples_per_step
        self.tokens_per_sample = tokens_per_sample
        self.start_step = 0
        self.end_step = 0
        self.start_time = self.end_time = 0.0
        self._last_step = 0
        self._last_time = 0.0

    # transformers calls these with (args, state, control, **kwargs)
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_step = self._last_step = state.global_step
        self.start_time = self._last_time = time.perf_counter()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.end_step = state.global_step
        self.end_time = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not self.main_process or not logs:
            return
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if isinstance(logs.get(key), (int, float)):
                record[key] = float(logs[key])
        if "loss" in record:
            record["perplexity"] = perplexity(record["loss"])
            now = time.perf_counter()
            steps = state.global_step - self._last_step
            if steps > 0 and now > self._last_time:
                sps = steps * self.samples_per_step / (now - self._last_time)
                record["samples_per_second"] = sps
                record["tokens_per_second"] = sps * self.tokens_per_sample
            self._last_step, self._last_time = state.global_step, now
        if "eval_loss" in record:
            record["eval_perplexity"] = perplexity(record["eval_loss"])
        if len(record) <= 3:  # nothing we track (e.g. the trainer's end-of-run summary)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(format_log_line(record), flush=True)

    def throughput(self) -> dict[str, float]:
        steps = self.end_step - self.start_step
        wall = max(self.end_time - self.start_time, 1e-9)
        sps = steps * self.samples_per_step / wall
        return {"session_steps": steps, "wall_time_s": wall, "samples_per_second": sps,
                "tokens_per_second": sps * self.tokens_per_sample}


def plot_loss(metrics_path: Path, png_path: Path, title: str = "Fine-tuning loss") -> Path:
    """Train and eval loss against step, as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="tab:blue", linewidth=1.5)
    if evals:
        ax.plot(*zip(*evals, strict=True), label="eval loss", color="tab:orange", marker="o", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if train or evals:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fd, name = tempfile.mkstemp(dir=png_path.parent, prefix=f".{png_path.name}.", suffix=".tmp.png")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        tmp.replace(png_path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return png_path


def final_value(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if key in r]
    return values[-1] if values else None

"""Once-per-job work (metrics, loss plot, summary) is done by global rank 0 only, decided from RANK.

optimum-neuron 0.4.5's trainer reports every rank of a multi-node job as the world's process zero
(training.backends.global_rank says why), so the trainer's own answer cannot be trusted for this.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.figure
import pytest
from training_helpers import parse_finetune

from training.backends import global_rank, is_main_process
from training.metrics import plot_loss

FLAGS = ["--backend", "cpu", "--max_seq_length", "64", "--max_steps", "2", "--save_steps", "2",
         "--logging_steps", "1", "--eval_fraction", "0"]


def test_rank_comes_from_torchruns_rank_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "37")
    assert global_rank() == 37 and not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
    monkeypatch.delenv("RANK")
    assert global_rank() == 0


def test_a_rank_other_than_zero_trains_but_writes_no_results(tiny_model: Path, dolly_path: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from training.finetune import main

    out = tmp_path / "run"
    monkeypatch.setenv("RANK", "1")  # the trainer itself sees a single process and calls it process zero
    assert main(*parse_finetune(["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path),
                                 "--output_dir", str(out), *FLAGS])) is None
    assert (out / "checkpoint-2").is_dir()  # it trained and saved as the trainer does on every rank
    for name in ("summary.json", "metrics.jsonl", "loss.png", "adapter_config.json"):
        assert not (out / name).exists(), f"rank 1 wrote {name}"


def test_rank_zero_writes_the_results(tiny_model: Path, dolly_path: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from training.finetune import main

    out = tmp_path / "run"
    monkeypatch.setenv("RANK", "0")
    summary = main(*parse_finetune(["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path),
                                    "--output_dir", str(out), *FLAGS]))
    assert summary is not None and json.loads((out / "summary.json").read_text())["steps"] == 2
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").open()) if "loss" in r] == [1, 2]


def test_two_writers_of_the_loss_plot_at_the_same_moment_both_succeed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    png = tmp_path / "loss.png"
    save = matplotlib.figure.Figure.savefig
    nested = []

    def save_then_let_another_writer_finish(fig: matplotlib.figure.Figure, *args: object, **kw: object) -> None:
        save(fig, *args, **kw)
        if not nested:  # another rank writes and renames its plot between this write and this rename
            nested.append(True)
            plot_loss(metrics, png)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", save_then_let_another_writer_finish)
    plot_loss(metrics, png)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "metrics.jsonl"]  # no temporary left

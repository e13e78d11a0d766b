"""Auto-resume: rerunning the same command after a crash continues from the last complete checkpoint."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from training_helpers import REPO_ROOT, module_cmd, parse_finetune, run_module, run_module_reporting_imports

from training.finetune import _run_args, latest_complete_checkpoint, main

pytestmark = pytest.mark.heavy  # two training processes, one killed mid-run


def _state(ckpt: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((ckpt / "trainer_state.json").read_text())


def test_a_checkpoint_without_trainer_state_is_passed_over(tmp_path: Path) -> None:
    for step, complete in [(10, True), (20, True), (30, False)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert latest_complete_checkpoint(tmp_path / "absent") is None


def test_a_killed_run_resumes_from_its_checkpoint(tiny_model: Path, dolly_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path), "--output_dir", str(out),
            "--backend", "cpu", "--max_seq_length", "64", "--per_device_train_batch_size", "2",
            "--max_steps", "120", "--save_steps", "15", "--logging_steps", "10", "--eval_fraction", "0"]
    first = subprocess.Popen(module_cmd("training.finetune", *args), cwd=REPO_ROOT, env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while latest_complete_checkpoint(out) is None and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # what a lost node looks like: no clean shutdown
    finally:
        first.wait()
    killed_at = latest_complete_checkpoint(out)
    assert killed_at is not None, "the first run never wrote a checkpoint"
    resumed_step = _state(killed_at)["global_step"]
    assert 0 < resumed_step < 120, "the first run finished before it could be killed"
    assert not (out / "summary.json").exists()

    second = run_module("training.finetune", *args)  # the same command, as HyperPod auto-resume reruns it
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {killed_at} (step {resumed_step})" in second.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["resumed_from_step"], summary["steps"]) == (resumed_step, 120)
    assert summary["session_steps"] == 120 - resumed_step
    final = _state(out / "checkpoint-120")
    assert final["global_step"] == 120
    # the loaded history reaches back before the crash: the run continued rather than restarted
    assert [h["step"] for h in final["log_history"] if "loss" in h][:2] == [1, 10]
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").open()) if "loss" in r]
    assert steps == [1, *range(10, 121, 10)]  # nothing logged twice around the crash


    third = run_module("training.finetune", *args)  # requeued once more after finishing: a no-op
    assert third.returncode == 0, third.stderr[-3000:]
    assert "already reached max_steps=120; nothing to do" in third.stderr
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_finished_run_requeued_again_is_a_no_op_decided_before_the_ml_stack_loads(tiny_model: Path,
                                                                                   dolly_path: Path,
                                                                                   tmp_path: Path) -> None:
    """HyperPod auto-resume and Slurm requeue rerun jobs that had finished: the rerun must leave the results
    as they are, and should not pay torch's and transformers' import to find out."""
    out = tmp_path / "run"
    args = ["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path), "--output_dir", str(out),
            "--backend", "cpu", "--max_steps", "7"]
    out.mkdir()
    # what matters of a finished run's summary.json: its arguments, and that it reached max_steps
    finished = {"args": _run_args(*parse_finetune(args)), "steps": 7, "max_steps": 7, "final_train_loss": 0.5}
    (out / "summary.json").write_text(json.dumps(finished))
    result, loaded = run_module_reporting_imports("training.finetune", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{out} already reached max_steps=7; nothing to do" in result.stderr
    assert loaded == []
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert json.loads((out / "summary.json").read_text()) == finished


def test_the_compile_pass_runs_few_steps_and_leaves_nothing_to_resume(tiny_model: Path, dolly_path: Path,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # in this process: what is checked is what the run leaves, not the command's wiring
    out = tmp_path / "run"
    monkeypatch.setenv("NEURON_EXTRACT_GRAPHS_ONLY", "1")  # what neuron_parallel_compile sets for the command
    caplog.set_level(logging.INFO, logger="training.finetune")
    assert main(*parse_finetune(["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path),
                                 "--output_dir", str(out), "--backend", "cpu", "--max_seq_length", "64",
                                 "--max_steps", "100", "--save_steps", "2", "--logging_steps", "1"])) is None
    assert "compile pass done (10 steps)" in caplog.text
    assert latest_complete_checkpoint(out) is None
    assert not (out / "summary.json").exists() and not (out / "adapter_config.json").exists()

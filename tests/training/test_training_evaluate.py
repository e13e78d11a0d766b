"""training.evaluate: the held-out split training wrote, scored on the base and the merged model."""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from training_helpers import Run, run_module

from training.cli import run_entry_point
from training.data import HELDOUT_FILE, DataError, load_examples, read_heldout, split_examples
from training.errors import UserError
from training.evaluate import EvaluateArguments, EvaluateInputError

pytestmark = pytest.mark.heavy  # builds the shared 300-step LoRA run, merges and evaluates it


def similarity(answer: str, reference: str) -> float:
    return difflib.SequenceMatcher(None, answer, reference).ratio()


@pytest.fixture(scope="module")
def merged(lora_run: Run, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.weights.merge import MergeArguments
    from training.weights.merge import main as merge

    out = tmp_path_factory.mktemp("merged") / "model"
    merge(MergeArguments(base_model_path=str(tiny_model), adapter_path=str(lora_run.output_dir),
                         output_dir=str(out), dtype="float32"))
    return out


@pytest.fixture(scope="module")
def evaluated(lora_run: Run, tiny_model: Path, merged: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The command line as the evaluate job gives it, on the CPU: what it printed and wrote. It runs in this
    process (the ML stack is loaded here already); `python -m training.evaluate`'s own wiring and exit
    statuses are checked by the tests that run it."""
    from training.evaluate import EvaluateArguments, main

    out = tmp_path_factory.mktemp("eval") / "evaluation.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = run_entry_point((EvaluateArguments,), main, prog="python -m training.evaluate", description=None,
                                 argv=["--base_model_path", str(tiny_model), "--merged_model_path", str(merged),
                                       "--heldout_path", str(lora_run.output_dir / HELDOUT_FILE),
                                       "--output_path", str(out), "--max_examples", "12", "--num_prompts", "3",
                                       "--max_new_tokens", "24", "--device", "cpu"])
    assert status == 0
    return printed.getvalue(), json.loads(out.read_text())


def test_training_writes_down_the_examples_it_held_out(lora_run: Run, dolly_path: Path) -> None:
    heldout = read_heldout(lora_run.output_dir / HELDOUT_FILE)
    examples = load_examples([dolly_path]).examples
    train, held = split_examples(examples, 0.05, seed=42)  # the run's defaults
    assert heldout.examples == held
    assert [examples[i] for i in heldout.indices] == held
    assert len(train) + len(held) == len(examples)
    assert lora_run.summary["heldout_examples"] == len(held)


def test_the_merged_model_is_far_better_than_the_base_on_the_held_out_split(
        evaluated: tuple[str, dict[str, Any]]) -> None:
    _, results = evaluated
    base, tuned = results["models"]["base"], results["models"]["merged"]
    # a random tiny Llama is near uniform over its ~500 tokens; 300 steps learn the data's patterns
    assert base["perplexity"] > 100
    assert tuned["perplexity"] * 10 < base["perplexity"]
    assert base["tokens"] == tuned["tokens"] > 0  # both scored on the same tokens


def test_both_models_answer_the_same_held_out_prompts_beside_the_reference(
        evaluated: tuple[str, dict[str, Any]], lora_run: Run) -> None:
    _, results = evaluated
    held = read_heldout(lora_run.output_dir / HELDOUT_FILE).examples[:3]
    rows = results["generations"]
    assert [(r["instruction"], r["context"], r["reference"]) for r in rows] == [
        (ex.instruction, ex.context, ex.response) for ex in held]
    # the tuned model answers in the trained shape (its facts may still be off after 300 tiny steps)
    for row in rows:
        assert similarity(row["merged"], row["reference"]) > similarity(row["base"], row["reference"]), row


def test_evaluate_says_which_device_and_how_long(evaluated: tuple[str, dict[str, Any]]) -> None:
    stdout, results = evaluated
    assert results["device"] == "cpu"
    assert results["heldout"]["examples_scored"] == 12
    assert all(m["seconds"]["total"] > 0 for m in results["models"].values())
    assert "evaluate: device cpu" in stdout
    assert f"evaluated on cpu in {results['seconds']:.1f} s" in stdout


def test_a_run_without_a_held_out_split_is_one_error_line(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    result = run_module("training.evaluate", "--base_model_path", str(tiny_model), "--merged_model_path",
                        str(tiny_model), "--heldout_path", str(tmp_path / HELDOUT_FILE), "--output_path", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / HELDOUT_FILE}: no held-out split; train with --eval_fraction > 0 (EVAL_FRACTION) "
        "to set one aside"]
    assert not out.exists()


def test_a_damaged_held_out_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / HELDOUT_FILE
    path.write_text('{"examples": [{"instruction": "q"}]}')
    with pytest.raises(DataError, match=f"{path}: not a held-out split written by training.finetune"):
        read_heldout(path)


@pytest.mark.parametrize(("flag", "value"), [("max_examples", 0), ("batch_size", 0), ("num_prompts", -1)])
def test_a_bad_bound_is_an_error_naming_the_flag(tiny_model: Path, flag: str, value: int) -> None:
    with pytest.raises(UserError, match=f"--{flag} must be >= "):
        EvaluateArguments(base_model_path=str(tiny_model), merged_model_path=str(tiny_model),
                          heldout_path="h.json", output_path="o.json", **{flag: value})


def test_a_path_that_is_not_a_model_is_named(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluateInputError, match=f"--merged_model_path {tmp_path}: not a model directory"):
        EvaluateArguments(base_model_path=str(tiny_model), merged_model_path=str(tmp_path),
                          heldout_path="h.json", output_path="o.json")


def test_help_works_without_loading_torch() -> None:
    result = run_module("training.evaluate", "--help")
    assert result.returncode == 0 and "--max_examples" in result.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, training.evaluate; "
                            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"

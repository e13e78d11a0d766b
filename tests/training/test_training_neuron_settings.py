"""What the neuron backend hands optimum-neuron, and the settings refused before anything is loaded.

These run without optimum-neuron; `make check-neuron` runs the same settings through its real code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import parse_finetune, run_module

from training.finetune import RunSetupError, _sft_kwargs, check_layout
from training.trainers import TrainerParts, neuron_settings


@pytest.fixture
def base(tiny_model: Path, dolly_path: Path, tmp_path: Path) -> list[str]:
    """The flags every run needs; the paths are checked as the arguments are parsed, so they are real."""
    return ["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path),
            "--output_dir", str(tmp_path / "run")]


def parts_for(base: list[str], *flags: str) -> TrainerParts:
    model, data, train = parse_finetune([*base, *flags])
    return TrainerParts(model_path="m", tokenizer=None, train_dataset=None, eval_dataset=None, peft_config=None,
                        callbacks=[], sft_kwargs=_sft_kwargs(model, data, train, compile_pass=False), bf16=True)


def test_gradient_checkpointing_comes_with_its_kwargs(base: list[str]) -> None:
    settings = neuron_settings(parts_for(base, "--gradient_checkpointing", "true"), 8)
    assert settings["gradient_checkpointing"] is True
    assert settings["gradient_checkpointing_kwargs"] == {"use_reentrant": True}  # transformers' default


def test_the_compile_cache_is_never_pushed_to_the_hub(base: list[str]) -> None:
    assert neuron_settings(parts_for(base), 8)["skip_cache_push"] is True


def test_sequence_length_must_split_over_the_tensor_parallel_ranks(monkeypatch: pytest.MonkeyPatch,
                                                                  base: list[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "64")
    model, data, _ = parse_finetune([*base, "--tensor_parallel_size", "8", "--max_seq_length", "1028"])
    with pytest.raises(RunSetupError, match=r"--max_seq_length 1028 is not divisible by --tensor_parallel_size 8"):
        check_layout("neuron", model, data)
    assert check_layout("cpu", model, data).tensor_parallel_size == 1  # only the neuron backend shards


def test_tensor_parallel_size_must_divide_the_processes(monkeypatch: pytest.MonkeyPatch, base: list[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "12")
    model, data, _ = parse_finetune([*base, "--tensor_parallel_size", "8"])
    with pytest.raises(RunSetupError, match="does not divide the 12 processes"):
        check_layout("neuron", model, data)
    monkeypatch.setenv("WORLD_SIZE", "64")
    layout = check_layout("neuron", model, data)
    assert (layout.tensor_parallel_size, layout.data_parallel_size) == (8, 8)


def test_a_bad_layout_is_one_error_line_and_exit_2_on_any_machine(tiny_model: Path, dolly_path: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_module("training.finetune", "--model_name_or_path", str(tiny_model), "--dataset_path",
                        str(dolly_path), "--output_dir", str(out), "--backend", "neuron",
                        "--tensor_parallel_size", "8", "--max_seq_length", "1002", env={"WORLD_SIZE": "32"},
                        timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --max_seq_length 1002 is not divisible by --tensor_parallel_size 8: sequence parallelism splits "
        "every block over the 8 tensor-parallel ranks; use a multiple of 8")
    assert not out.exists()

"""Command lines: --help without optimum-neuron, the contract flags, recipes, validation, backend choice."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import REPO_ROOT, parse_finetune, run_module

from training.backends import BackendUnavailable, resolve_backend

CONTRACT_FLAGS = [  # docs/contracts.md, "Flags the job templates rely on"
    "model_name_or_path", "dataset_path", "output_dir", "backend", "tensor_parallel_size", "max_steps",
    "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
    "max_seq_length", "save_steps", "logging_steps", "lora_r", "lora_alpha", "lora_dropout",
    "lora_target_modules", "full_finetune", "bf16", "seed",
]
REQUIRED = ["--model_name_or_path", "m", "--dataset_path", "d.jsonl", "--output_dir", "o"]


def test_optimum_neuron_is_absent_here() -> None:
    """The premise of the tests below: this machine cannot import the Neuron stack."""
    assert importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.neuron") is None


def test_importing_the_package_imports_neither_torch_nor_optimum() -> None:
    code = "import sys, training; print(sorted(m for m in ('torch', 'optimum') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "flags"), [
    ("training.finetune", CONTRACT_FLAGS),
    ("training.download", ["model_id", "output_dir", "revision", "hf_token_secret_arn", "region"]),
    ("training.generate", ["model_path", "adapter_path", "prompt", "context", "max_new_tokens"]),
])
def test_help_lists_the_contract_flags(module: str, flags: list[str]) -> None:
    result = run_module(module, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout
    missing = [f for f in flags if f"--{f}" not in result.stdout]
    assert missing == []


def test_the_contract_command_line_parses() -> None:
    model, data, train = parse_finetune([
        *REQUIRED, "--backend", "cpu", "--tensor_parallel_size", "8", "--max_steps", "100",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "4", "--learning_rate", "2e-4",
        "--max_seq_length", "1024", "--save_steps", "25", "--logging_steps", "5", "--lora_r", "8",
        "--lora_alpha", "32", "--lora_dropout", "0.1", "--lora_target_modules", "q_proj,k_proj,v_proj",
        "--full_finetune", "false", "--bf16", "true", "--seed", "7",
    ])
    assert model.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert (model.bf16, model.full_finetune, model.tensor_parallel_size, model.lora_r) == (True, False, 8, 8)
    assert (train.max_steps, train.gradient_accumulation_steps, train.learning_rate, train.seed) == (100, 4, 2e-4, 7)
    assert data.max_seq_length == 1024


def test_a_recipe_sets_defaults_and_flags_override_it(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: /m\nlora_r: 8\nlearning_rate: 0.001\nlora_target_modules: [q_proj, o_proj]\n")
    model, _, train = parse_finetune([str(recipe), "--dataset_path", "d", "--output_dir", "o", "--lora_r", "4"])
    assert (model.model_name_or_path, model.lora_r, train.learning_rate) == ("/m", 4, 0.001)
    assert model.target_modules == ["q_proj", "o_proj"]


def test_the_shipped_llama3_recipe_is_valid() -> None:
    model, data, train = parse_finetune([str(REPO_ROOT / "training/recipes/llama3-8b-lora.yaml"), *REQUIRED])
    assert (model.tensor_parallel_size, model.bf16, model.target_modules) == (8, True, ["q_proj", "v_proj"])
    assert (data.max_seq_length, train.gradient_accumulation_steps) == (2048, 16)


def test_an_unknown_recipe_key_is_an_error_naming_it(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lora_rank: 8\n")
    with pytest.raises(ValueError, match=r"unknown key.*lora_rank"):
        parse_finetune([str(recipe), *REQUIRED])


@pytest.mark.parametrize(("flag", "value"), [
    ("lora_r", "0"), ("lora_dropout", "1.5"), ("max_steps", "0"), ("learning_rate", "-1"),
    ("tensor_parallel_size", "0"), ("eval_fraction", "1"), ("max_seq_length", "4"), ("save_steps", "0"),
])
def test_a_bad_value_is_an_error_naming_the_flag(flag: str, value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(flag)):
        parse_finetune([*REQUIRED, f"--{flag}", value])


def test_auto_backend_is_cpu_without_neuron_devices_or_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_backend("auto") == "cpu"


def test_the_neuron_backend_says_what_is_missing() -> None:
    with pytest.raises(BackendUnavailable, match=r"optimum-neuron.*not installed.*--backend cpu"):
        resolve_backend("neuron")


def test_finetune_with_neuron_backend_fails_with_that_message(tiny_model: Path, dolly_path: Path,
                                                              tmp_path: Path) -> None:
    result = run_module("training.finetune", "--model_name_or_path", str(tiny_model), "--dataset_path",
                        str(dolly_path), "--output_dir", str(tmp_path / "run"), "--backend", "neuron")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --backend neuron needs optimum-neuron")
    assert not (tmp_path / "run").exists()

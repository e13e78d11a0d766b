"""Command lines: --help without optimum-neuron, the contract flags, recipes, validation, backend choice,
and the dataclass -> argparse rules of training.cli (bool forms, optional ints, required flags, aliases)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from training_helpers import REPO_ROOT, parse_finetune, run_module

from training.backends import BackendUnavailable, resolve_backend
from training.cli import parse, run_entry_point
from training.errors import ArgumentError
from training.finetune import ARGUMENT_TYPES

CONTRACT_FLAGS = [  # docs/contracts.md, "Flags the job templates rely on"
    "model_name_or_path", "dataset_path", "output_dir", "backend", "tensor_parallel_size", "max_steps",
    "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
    "max_seq_length", "save_steps", "logging_steps", "lora_r", "lora_alpha", "lora_dropout",
    "lora_target_modules", "full_finetune", "bf16", "seed",
]
REQUIRED = ["--model_name_or_path", "m", "--dataset_path", "d.jsonl", "--output_dir", "o"]


@pytest.fixture(autouse=True)
def _in_a_dir_with_the_required_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUIRED names paths that exist (the flags are checked against the file system): a model directory
    m/ (a config and a tokenizer config, no weights) and a data file d.jsonl, in the current directory."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "tokenizer_config.json").write_text("{}")
    (tmp_path / "d.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)


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
    recipe.write_text("model_name_or_path: m\nlora_r: 8\nlearning_rate: 0.001\nlora_target_modules: [q_proj, o_proj]\n")
    model, _, train = parse_finetune([str(recipe), "--dataset_path", "d.jsonl", "--output_dir", "o", "--lora_r", "4"])
    assert (model.model_name_or_path, model.lora_r, train.learning_rate) == ("m", 4, 0.001)
    assert model.target_modules == ["q_proj", "o_proj"]


def test_the_shipped_llama3_recipe_is_valid() -> None:
    model, data, train = parse_finetune([str(REPO_ROOT / "training/recipes/llama3-8b-lora.yaml"), *REQUIRED])
    assert (model.tensor_parallel_size, model.bf16, model.target_modules) == (8, True, ["q_proj", "v_proj"])
    assert (data.max_seq_length, train.gradient_accumulation_steps, train.num_train_epochs) == (2048, 8, 3)


def test_an_unknown_recipe_key_is_an_error_naming_it(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lora_rank: 8\n")
    with pytest.raises(ArgumentError, match=r"unknown key.*lora_rank"):
        parse_finetune([str(recipe), *REQUIRED])


@pytest.mark.parametrize(("extra", "resume"), [
    ([], True), (["--resume"], True), (["--no_resume"], False), (["--no-resume"], False),
    (["--resume", "false"], False), (["--resume", "No"], False), (["--resume", "0"], False),
    (["--resume", "TRUE"], True), (["--resume", "yes"], True), (["--resume", "1"], True),
])
def test_a_bool_flag_takes_a_bare_flag_a_value_or_the_no_form(extra: list[str], resume: bool) -> None:
    _, _, train = parse_finetune([*REQUIRED, *extra])
    assert train.resume is resume


def test_a_bare_bool_flag_defaulting_to_false_sets_it_true() -> None:
    model, data, _ = parse_finetune([*REQUIRED, "--bf16", "--skip_bad_rows"])
    assert (model.bf16, data.skip_bad_rows, model.full_finetune) == (True, True, False)


def test_only_a_bool_defaulting_to_true_has_a_no_form() -> None:
    with pytest.raises(ArgumentError, match="unrecognized arguments: --no_bf16"):
        parse_finetune([*REQUIRED, "--no_bf16"])


def test_a_bad_bool_value_is_an_argument_error_naming_the_flag() -> None:
    with pytest.raises(ArgumentError, match=r"argument --resume.*'maybe'"):
        parse_finetune([*REQUIRED, "--resume", "maybe"])


def test_an_optional_int_defaults_to_none_and_parses_a_number() -> None:
    _, _, default = parse_finetune(REQUIRED)
    _, _, given = parse_finetune([*REQUIRED, "--eval_steps", "5", "--save_total_limit", "2"])
    assert (default.eval_steps, default.save_total_limit) == (None, None)
    assert (given.eval_steps, given.save_total_limit) == (5, 2)


def test_an_optional_int_refuses_text() -> None:
    with pytest.raises(ArgumentError, match="argument --eval_steps"):
        parse_finetune([*REQUIRED, "--eval_steps", "often"])


def test_a_missing_required_flag_is_an_argument_error_naming_it() -> None:
    with pytest.raises(ArgumentError, match=r"required: --dataset_path\b"):
        parse_finetune(["--model_name_or_path", "m", "--output_dir", "o"])


def test_a_recipe_can_supply_a_required_flag(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_path: d.jsonl\n")
    _, data, _ = parse_finetune([str(recipe), "--model_name_or_path", "m", "--output_dir", "o"])
    assert data.dataset_path == "d.jsonl"


def test_a_flag_may_be_spelled_with_dashes() -> None:
    model, _, train = parse_finetune(["--model-name-or-path", "m", "--dataset-path", "d.jsonl", "--output-dir", "o",
                                      "--lora-r", "4", "--full-finetune", "true"])
    assert (model.model_name_or_path, model.lora_r, model.full_finetune, train.output_dir) == ("m", 4, True, "o")


def test_an_unknown_flag_is_an_argument_error_pointing_at_help() -> None:
    with pytest.raises(ArgumentError, match=r"unrecognized arguments: --lora_rank 8 \(see .* --help\)"):
        parse_finetune([*REQUIRED, "--lora_rank", "8"])


def test_metadata_choices_limit_the_values() -> None:
    with pytest.raises(ArgumentError, match="argument --backend: invalid choice: 'tpu'"):
        parse_finetune([*REQUIRED, "--backend", "tpu"])


def test_a_validation_error_becomes_one_error_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = run_entry_point(ARGUMENT_TYPES, lambda *args: None, prog="p", description=None,
                             argv=[*REQUIRED, "--lora_r", "0"])
    assert status == 2
    assert capsys.readouterr().err == "error: --lora_r must be >= 1, got 0\n"


def test_a_bug_is_not_a_user_error_and_keeps_its_traceback() -> None:
    def buggy(*_args: object) -> None:
        raise ValueError("an internal inconsistency")

    with pytest.raises(ValueError, match="internal inconsistency"):
        run_entry_point(ARGUMENT_TYPES, buggy, prog="p", description=None, argv=REQUIRED)


@dataclass
class _ListArguments:
    names: list[str] = field(default_factory=list, metadata={"help": "A type the parser does not build."})


def test_a_field_type_without_a_flag_rule_is_a_type_error_naming_the_field() -> None:
    with pytest.raises(TypeError, match=r"_ListArguments\.names.*list\[str\]"):
        parse((_ListArguments,), [])


def test_parsing_imports_neither_transformers_nor_torch(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lora_r: 8\n")
    code = ("import sys, training.cli, training.finetune as f; "
            f"training.cli.parse(f.ARGUMENT_TYPES, [{str(recipe)!r}, *{REQUIRED!r}, '--no_resume', '--bf16']); "
            "print(sorted(m for m in ('transformers', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("flag", "value"), [
    ("lora_r", "0"), ("lora_dropout", "1.5"), ("max_steps", "0"), ("learning_rate", "-1"),
    ("tensor_parallel_size", "0"), ("eval_fraction", "1"), ("max_seq_length", "4"), ("save_steps", "0"),
])
def test_a_bad_value_is_an_error_naming_the_flag(flag: str, value: str) -> None:
    with pytest.raises(ArgumentError, match=re.escape(f"--{flag}")):
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


def test_an_entry_point_leaves_nothing_for_the_final_garbage_collection_to_walk(tmp_path: Path) -> None:
    """A process that loaded torch and transformers would otherwise spend ~2 s collecting as it exits
    (training.cli._skip_final_collections): the objects alive at exit are frozen before that."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))  # runs last\n"
            "import training.cli, training.finetune as f\n"
            "sys.exit(training.cli.run_entry_point(f.ARGUMENT_TYPES, lambda *args: None, prog='p', description=None,"
            " argv=sys.argv[1:]))\n")
    out = subprocess.run([sys.executable, "-c", code, *REQUIRED], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "frozen at exit: True"

"""Every `python -m training.<name>` keeps the error policy on bad input (tests/support/bad_input.py):
exit 2, one `error:` line naming what is wrong, no traceback, nothing left behind, and (a mistake that the
flags and files show) before torch and transformers load. The rows are kinds of
mistake (a bad number, a missing or wrong kind of path, a file that is not what it claims), not one
module's special cases: the policy lives in training.cli and training.errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from bad_input import assert_user_error, listing
from training_helpers import REPO_ROOT, run_module_reporting_imports


@dataclass(frozen=True)
class Inputs:
    model: Path      # the tiny model
    data: Path       # a dolly file
    work: Path       # where outputs go (checked for leftovers)
    a_file: Path     # a plain file
    empty_dir: Path  # an empty directory
    adapter: Path    # a plain peft adapter directory


Row = tuple[str, Callable[[Inputs], list[str]], str]  # module, its argv, what the error line must contain


def _finetune(i: Inputs, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(i.model), "--dataset_path", str(i.data), "--output_dir",
            str(i.work / "run"), "--backend", "cpu", *extra]


def _recipe(i: Inputs, text: str) -> str:
    path = i.empty_dir.parent / "recipe.yaml"
    path.write_text(text)
    return str(path)


def _loop(i: Inputs) -> str:
    """A symbolic link that points, through another, back at itself."""
    loop = i.empty_dir.parent / "loop"
    loop.mkdir()
    (loop / "b").symlink_to(loop / "a")
    (loop / "a").symlink_to(loop / "b")
    return str(loop / "a")


def _without_tokenizer(i: Inputs) -> str:
    """A copy of the tiny model with its weights and config but none of its tokenizer files."""
    partial = i.empty_dir.parent / "no-tokenizer"
    shutil.copytree(i.model, partial, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json"))
    return str(partial)


def _garbage_model(i: Inputs) -> str:
    """A copy of the tiny model whose model.safetensors claims a header of 2**63 bytes."""
    broken = i.empty_dir.parent / "garbage-model"
    shutil.copytree(i.model, broken)
    (broken / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}" * 16)
    return str(broken)


ROWS: list[Row] = [
    ("training.finetune", lambda i: _finetune(i, "--max_steps", "-5"), "--max_steps"),
    ("training.finetune", lambda i: _finetune(i, "--learning_rate", "-1"), "--learning_rate"),
    ("training.finetune", lambda i: _finetune(i, "--eval_fraction", "1.5"), "--eval_fraction"),
    ("training.finetune", lambda i: _finetune(i, "--max_seq_length", "0"), "--max_seq_length"),
    ("training.finetune", lambda i: _finetune(i, "--lora_r", "0"), "--lora_r"),
    ("training.finetune", lambda i: _finetune(i, "--max_steps", "many"), "--max_steps"),
    ("training.finetune", lambda i: _finetune(i, "--learning_rate", "nan"), "--learning_rate"),
    ("training.merge", lambda i: ["--base_model_path", str(i.model), "--adapter_path", str(i.adapter),
                                  "--output_dir", str(i.work / "out"), "--max_shard_size_gb", "inf"],
     "--max_shard_size_gb"),
    ("training.finetune", lambda i: _finetune(i, "--backend", "tpu"), "--backend"),
    ("training.finetune", lambda i: _finetune(i, "--lora_rank", "8"), "--lora_rank"),
    ("training.finetune", lambda i: _finetune(i, "--lora_target_modules", "q_proj,qkv_proj"), "qkv_proj"),
    ("training.finetune", lambda i: [_recipe(i, "lora_rnak: 8\n"), *_finetune(i)], "lora_rnak"),
    ("training.finetune", lambda i: [_recipe(i, "lora_r: [8\n"), *_finetune(i)], "recipe"),
    ("training.finetune", lambda i: [str(i.work / "none.yaml"), *_finetune(i)], "none.yaml"),
    ("training.finetune", lambda i: [*_finetune(i), "--output_dir", str(i.a_file)], "--output_dir"),
    ("training.finetune", lambda i: [*_finetune(i), "--output_dir", str(i.a_file / "run")], "--output_dir"),
    ("training.finetune", lambda i: [*_finetune(i), "--model_name_or_path", str(i.work / "nope")],
     "--model_name_or_path"),
    ("training.finetune", lambda i: [*_finetune(i), "--model_name_or_path", "meta-llama/Meta-Llama-3-8B"],
     "training.download"),
    ("training.finetune", lambda i: [*_finetune(i), "--model_name_or_path", str(i.empty_dir)], "config.json"),
    ("training.finetune", lambda i: [*_finetune(i), "--model_name_or_path", _without_tokenizer(i)], "tokenizer"),
    ("training.finetune", lambda i: [*_finetune(i), "--dataset_path", str(i.work / "none.jsonl")], "--dataset_path"),
    ("training.finetune", lambda i: [*_finetune(i), "--dataset_path", str(i.a_file)], "notes.txt"),
    ("training.finetune", lambda i: _finetune(i, "--backend", "neuron"), "--backend neuron needs optimum-neuron"),
    ("training.finetune", lambda i: _finetune(i, "--backend", "neuron", "--tensor_parallel_size", "8"),
     "--tensor_parallel_size 8 does not divide"),
    ("training.generate", lambda i: ["--model_path", str(i.work / "nope"), "--prompt", "Hi"], "--model_path"),
    ("training.generate", lambda i: ["--model_path", str(i.model), "--prompt", "Hi", "--max_new_tokens", "0"],
     "--max_new_tokens"),
    ("training.generate", lambda i: ["--model_path", str(i.model), "--adapter_path", str(i.empty_dir),
                                     "--prompt", "Hi"], "--adapter_path"),
    ("training.download", lambda i: ["--model_id", "meta-llama", "--output_dir", str(i.work / "m")], "--model_id"),
    ("training.download", lambda i: ["--model_id", "meta llama/Llama 3", "--output_dir", str(i.work / "m")],
     "--model_id"),
    ("training.consolidate", lambda i: ["--checkpoint_dir", str(i.work / "nope"), "--output_dir",
                                        str(i.work / "out")], "--checkpoint_dir"),
    ("training.consolidate", lambda i: ["--checkpoint_dir", str(i.a_file), "--output_dir", str(i.work / "out")],
     "--checkpoint_dir"),
    ("training.consolidate", lambda i: ["--checkpoint_dir", str(i.empty_dir), "--output_dir", str(i.work / "out")],
     "shards"),
    ("training.consolidate", lambda i: ["--checkpoint_dir", str(i.adapter), "--output_dir", str(i.model)],
     "not an empty directory"),
    ("training.consolidate", lambda i: ["--checkpoint_dir", str(i.adapter), "--output_dir", _loop(i)],
     "symbolic link"),
    ("training.merge", lambda i: ["--base_model_path", str(i.work / "nope"), "--adapter_path", str(i.empty_dir),
                                  "--output_dir", str(i.work / "out")], "--base_model_path"),
    ("training.merge", lambda i: ["--base_model_path", str(i.model), "--adapter_path", str(i.empty_dir),
                                  "--output_dir", str(i.work / "out"), "--dtype", "int8"], "--dtype"),
    ("training.merge", lambda i: ["--base_model_path", str(i.model), "--adapter_path", str(i.empty_dir),
                                  "--output_dir", str(i.work / "out")], "adapter_config.json"),
    ("training.merge", lambda i: ["--base_model_path", _garbage_model(i), "--adapter_path", str(i.empty_dir),
                                  "--output_dir", str(i.work / "out")], "adapter_config.json"),
    ("training.tiny", lambda i: ["--model_dir", str(i.work / "tiny"), "--num_records", "0"], "--num_records"),
    ("training.tiny", lambda i: ["--model_dir", str(i.a_file)], "--model_dir"),
    ("training.evaluate", lambda i: [*_evaluate(i), "--max_examples", "0"], "--max_examples"),
    ("training.evaluate", lambda i: ["--base_model_path", str(i.model), "--merged_model_path", str(i.empty_dir),
                                     "--heldout_path", str(i.a_file), "--output_path", str(i.work / "e.json")],
     "--merged_model_path"),
    ("training.evaluate", lambda i: _evaluate(i), "held-out"),
    ("training.report", lambda i: ["--run_dir", str(i.work / "nope")], "run_dir"),
    ("training.report", lambda i: ["--run_dir", str(i.empty_dir)], "summary.json"),
]


def _evaluate(i: Inputs) -> list[str]:
    """Two real models and a file that is not a held-out split."""
    return ["--base_model_path", str(i.model), "--merged_model_path", str(i.model), "--heldout_path",
            str(i.a_file), "--output_path", str(i.work / "evaluation.json")]


def test_every_entry_point_of_the_package_has_bad_input_rows() -> None:
    """A new `python -m training.<name>` joins the table, so the policy is checked for it too."""
    entry_points = {f"training.{p.stem}" for p in (REPO_ROOT / "training").glob("*.py")
                    if 'if __name__ == "__main__":' in p.read_text()}
    assert entry_points - {module for module, _, _ in ROWS} == set()


@pytest.fixture
def inputs(tiny_model: Path, dolly_path: Path, tmp_path: Path) -> Inputs:
    work = tmp_path / "work"
    work.mkdir()
    a_file = work / "notes.txt"
    a_file.write_text("not a directory\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    return Inputs(tiny_model, dolly_path, work, a_file, empty, _peft_adapter(tmp_path / "adapter", 0))


@pytest.mark.parametrize(("module", "argv", "names"), ROWS,
                         ids=[f"{m.removeprefix('training.')}-{n}" for m, _, n in ROWS])
def test_a_bad_input_is_one_error_line_exit_2_and_leaves_nothing(
        module: str, argv: Callable[[Inputs], list[str]], names: str, inputs: Inputs) -> None:
    args = argv(inputs)
    before = listing(inputs.work)
    started = time.monotonic()
    result, loaded = run_module_reporting_imports(module, *args, env={"HF_HUB_OFFLINE": "0"},  # no hub: fails
                                                  timeout=60)                                   # fast anyway
    result.stdout = ""  # it holds only the report of the imports
    line = assert_user_error(result, inputs.work, before)
    assert names in line
    assert time.monotonic() - started < 30  # no retries against a hub that is not there
    # what the flags and the files' names and headers show is refused before seconds go to importing the ML
    # stack (a requeued job pays them on every try)
    assert loaded == []


def test_a_safetensors_header_length_beyond_the_file_is_an_error_not_a_huge_read(tmp_path: Path) -> None:
    from training.weights.shards_io import SafetensorsError, tensor_ranges

    bad = tmp_path / "model.safetensors"
    bad.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(SafetensorsError, match=r"model\.safetensors: not a safetensors file .*header length"):
        tensor_ranges(bad)


def _unshare_works() -> bool:
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False) if shutil.which("unshare") \
        else None
    return probe is not None and probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not _unshare_works(), reason="needs `unshare -m` (root or CAP_SYS_ADMIN) to mount a small or read-only tmpfs")


def _in_tmpfs(mount: Path, options: str, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m module args` with a fresh tmpfs (`options`, e.g. size=64k or ro) mounted on `mount`, in a
    private mount namespace: a real full or read-only file system, gone when the command ends."""
    script = f'mount -t tmpfs -o {options} tmpfs "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(mount), sys.executable, "-m", module,
                           *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def _peft_adapter(path: Path, megabytes: int = 1) -> Path:
    """A plain peft adapter directory (what training.consolidate validates and copies) of about this size."""
    import torch
    from safetensors.torch import save_file

    path.mkdir()
    rows = max(1, megabytes * 1024 * 1024 // (4 * 64))
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(rows, 64)},
              str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}')
    return path


@needs_mount_namespace
def test_a_full_disk_mid_write_is_one_error_line_and_removes_the_partial_output(tmp_path: Path) -> None:
    adapter = _peft_adapter(tmp_path / "adapter")
    disk = tmp_path / "disk"
    disk.mkdir()
    result = _in_tmpfs(disk, "size=256k", "training.consolidate", "--checkpoint_dir", str(adapter),
                       "--output_dir", str(disk / "out"))
    line = assert_user_error(result, disk, set())  # after the namespace ends, `disk` is the empty original
    assert line.startswith(f"error: --output_dir {disk / 'out'}: no space left on device")


@needs_mount_namespace
def test_a_read_only_output_location_is_refused_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    result = _in_tmpfs(readonly, "ro", "training.consolidate", "--checkpoint_dir", str(tiny_model),
                       "--output_dir", str(readonly / "out"))
    line = assert_user_error(result, readonly, set())
    assert "read-only file system" in line and "--output_dir" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the command as another user")
def test_an_output_location_without_write_permission_is_refused() -> None:
    # root's directory, reachable by all (pytest's own tmp_path is not); the command runs as nobody, as
    # jobs run unprivileged
    locked = Path(tempfile.mkdtemp(prefix="training-locked-", dir="/tmp"))
    os.chmod(locked, 0o755)
    try:
        _run_as_nobody_into(locked)
    finally:
        shutil.rmtree(locked)


def _run_as_nobody_into(locked: Path) -> None:
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "training.tiny", "--model_dir", str(locked / "tiny")],
                            cwd="/", capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    line = assert_user_error(result, locked, set())
    assert "not writable by this user" in line


def test_sigterm_mid_consolidation_removes_the_hidden_temporary_output(tmp_path: Path) -> None:
    # Slurm's time limit and scancel send SIGTERM: the entry point turns it into SystemExit, so the
    # temporary directory is removed on the way out. Each copy is slowed so the signal lands mid-write.
    out = tmp_path / "out"
    code = ("import shutil, sys, time; copy = shutil.copy2\n"
            "def slow(*a):\n    time.sleep(0.5); return copy(*a)\n"
            "shutil.copy2 = slow\nfrom training.weights.consolidate import cli; sys.exit(cli(sys.argv[1:]))")
    adapter = _peft_adapter(tmp_path / "adapter")
    proc = subprocess.Popen([sys.executable, "-c", code, "--checkpoint_dir", str(adapter), "--output_dir", str(out)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.tmp-*")), "the temporary output never appeared"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def _no_lora_adapter(path: Path) -> Path:
    """An adapter with no LoRA tensors: merging it with --dtype only converts, every block through the
    writer thread's write()s."""
    from safetensors.torch import save_file

    path.mkdir()
    save_file({}, str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}')
    return path


@needs_mount_namespace
def test_a_full_disk_under_the_merge_writer_thread_is_one_error_line_and_removes_the_partial_output(
        tiny_model: Path, tmp_path: Path) -> None:
    adapter = _no_lora_adapter(tmp_path / "adapter")
    disk = tmp_path / "disk"
    disk.mkdir()
    result = _in_tmpfs(disk, "size=256k", "training.merge", "--base_model_path", str(tiny_model), "--adapter_path",
                       str(adapter), "--output_dir", str(disk / "out"), "--dtype", "bfloat16")
    line = assert_user_error(result, disk, set())
    assert line.startswith(f"error: --output_dir {disk / 'out'}: no space left on device")


def test_sigterm_while_the_merge_writer_thread_writes_removes_the_hidden_temporary_output(
        tiny_model: Path, tmp_path: Path) -> None:
    # the writer thread is mid-write (each write slowed) and the main thread is merging ahead of it: the
    # signal stops both and the temporary directory goes
    out = tmp_path / "out"
    code = ("import sys, time; import training.weights.shards_io as io; write = io._write_all\n"
            "def slow(*a):\n    time.sleep(0.3); return write(*a)\n"
            "io._write_all = slow\nfrom training.weights.merge import cli; sys.exit(cli(sys.argv[1:]))")
    adapter = _no_lora_adapter(tmp_path / "adapter")
    proc = subprocess.Popen([sys.executable, "-c", code, "--base_model_path", str(tiny_model), "--adapter_path",
                             str(adapter), "--output_dir", str(out), "--dtype", "bfloat16"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.tmp-*/*.safetensors")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.tmp-*/*.safetensors")), "the temporary output never appeared"
    time.sleep(0.5)  # a few blocks in flight
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))

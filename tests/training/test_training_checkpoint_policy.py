"""Before training, the output directory is put in order so that no checkpoint is ever written into a
directory an earlier run left, and consolidate never picks a checkpoint a later run began to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.checkpoints import SUPERSEDED_DIR, remove_incomplete, set_aside
from training.finetune import latest_complete_checkpoint, prepare_output_dir
from training.weights.shards_layout import CheckpointError, resolve_checkpoint


def sharded(root: Path, step: int, *, done: bool = True, state: bool = True) -> Path:
    """A Neuron LoRA checkpoint-N as optimum-neuron 0.4.5 lays it out (training.weights.shards_layout)."""
    ckpt = root / f"checkpoint-{step}"
    shards = ckpt / "adapter_default" / "adapter_shards"
    (shards / "model").mkdir(parents=True)
    (shards / "model" / "dp_rank_00_tp_rank_00_pp_rank_00.pt").write_bytes(b"weights of step %d" % step)
    if done:
        (shards / "done").touch()
    if state:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def plain(root: Path, step: int, *, state: bool = True) -> Path:
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "adapter_model.safetensors").write_bytes(b"x")
    if state:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def test_incomplete_checkpoints_of_either_layout_are_removed(tmp_path: Path) -> None:
    keep = [sharded(tmp_path, 10), plain(tmp_path, 20)]
    gone = [sharded(tmp_path, 30, done=False), sharded(tmp_path, 40, state=False), plain(tmp_path, 50, state=False)]
    assert sorted(remove_incomplete(tmp_path)) == sorted(gone)
    assert all(c.is_dir() for c in keep) and not any(c.exists() for c in gone)


def test_a_resumed_run_starts_from_the_newest_complete_checkpoint_with_the_broken_one_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    plain(tmp_path, 15)
    broken = plain(tmp_path, 30, state=False)
    assert prepare_output_dir(tmp_path, "cpu", resume=True) == tmp_path / "checkpoint-15"
    assert not broken.exists()


def test_a_neuron_restart_sets_the_old_run_aside_so_nothing_is_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    for step in (25, 50):
        sharded(tmp_path, step)
    assert prepare_output_dir(tmp_path, "neuron", resume=True) is None  # optimum-neuron 0.4.5 cannot resume
    assert latest_complete_checkpoint(tmp_path) is None
    assert sorted(p.name for p in (tmp_path / SUPERSEDED_DIR).iterdir()) == ["checkpoint-50"]

    # the new run is interrupted while writing its checkpoint-25: consolidate must not take it
    sharded(tmp_path, 25, done=False, state=False)
    with pytest.raises(CheckpointError, match="checkpoint-25"):
        resolve_checkpoint(tmp_path)
    # the old run's work is still there to be consolidated by name
    assert resolve_checkpoint(tmp_path / SUPERSEDED_DIR / "checkpoint-50").name == "checkpoint-50"


def test_only_global_rank_zero_changes_the_output_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "5")
    broken = sharded(tmp_path, 10, done=False)
    old = sharded(tmp_path, 5)
    assert prepare_output_dir(tmp_path, "neuron", resume=True) is None
    assert broken.is_dir() and old.is_dir()


def test_setting_aside_keeps_the_furthest_checkpoint_across_restarts(tmp_path: Path) -> None:
    sharded(tmp_path, 75)
    set_aside(tmp_path)
    sharded(tmp_path, 25)  # a second restart that got less far
    assert set_aside(tmp_path) == tmp_path / SUPERSEDED_DIR / "checkpoint-75"
    assert [p.name for p in (tmp_path / SUPERSEDED_DIR).iterdir()] == ["checkpoint-75"]
    assert not (tmp_path / "checkpoint-25").exists()

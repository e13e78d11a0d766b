"""Finding the `checkpoint-N` directories a trainer leaves in its output dir.

Training (to resume) and consolidation (to pick what to export) both want the
newest checkpoint that was completely written; each decides what "complete"
means, this module only names and orders the candidates. No heavy imports.
"""

from __future__ import annotations

import re
from pathlib import Path


def checkpoint_number(path: Path) -> int:
    """N for a directory named checkpoint-N, else -1."""
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def newest_first(output_dir: Path) -> list[Path]:
    """The checkpoint-N directories of `output_dir`, highest N first (by number: checkpoint-100 > checkpoint-20)."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and checkpoint_number(p) >= 0]
    return sorted(found, key=checkpoint_number, reverse=True)


SUPERSEDED_DIR = "superseded"  # where a run that starts again from step 0 puts the checkpoints it would overwrite


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why `checkpoint` was not completely written, None if it was.

    A sharded (Neuron) checkpoint needs neuronx_distributed's `done` markers and the trainer's
    trainer_state.json (training.weights.shards_layout decides, for consolidate too); a torch one needs
    trainer_state.json, which transformers writes after the weights and the optimizer.
    """
    from training.weights.shards_layout import incomplete_reason as sharded_reason
    from training.weights.shards_layout import shards_dirs

    if shards_dirs(checkpoint):
        return sharded_reason(checkpoint)
    if not (checkpoint / "trainer_state.json").is_file():
        return f"{checkpoint / 'trainer_state.json'}: missing; the trainer did not finish this checkpoint"
    return None


def remove_incomplete(output_dir: Path) -> list[Path]:
    """Delete every checkpoint-N of `output_dir` that was not completely written.

    A run writing checkpoint-N again into a half-written directory would leave the old files
    (and neuronx_distributed's old `done` marker) beside its new ones.
    """
    import shutil

    removed = [c for c in newest_first(output_dir) if incomplete_reason(c) is not None]
    for ckpt in removed:
        shutil.rmtree(ckpt)
    return removed


def set_aside(output_dir: Path) -> Path | None:
    """Move the complete checkpoints of `output_dir` out of the way of a run that starts at step 0.

    That run writes checkpoint-N again under the same names; writing into an old directory
    would let a half-written checkpoint look complete (its old `done` marker and
    trainer_state.json stay). The newest one is kept as `superseded/checkpoint-N` (replacing an
    older one kept there), so the work is not lost while the new run catches up; the rest go.
    Returns the kept checkpoint, if any.
    """
    import shutil

    found = newest_first(output_dir)
    if not found:
        return None
    aside = output_dir / SUPERSEDED_DIR
    previous = newest_first(aside)
    newest = found[0]
    if previous and checkpoint_number(previous[0]) > checkpoint_number(newest):
        kept: Path | None = previous[0]  # a longer run's checkpoint beats this shorter one
    else:
        for old in previous:
            shutil.rmtree(old)
        aside.mkdir(exist_ok=True)
        kept = newest.rename(aside / newest.name)
    for ckpt in newest_first(output_dir):
        shutil.rmtree(ckpt)
    return kept

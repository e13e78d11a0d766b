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

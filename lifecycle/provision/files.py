"""Copying a directory tree into the node's root, file by file, only where content differs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from provision.host import Host

SKIP_PARTS = ("__pycache__", ".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache")


def sync_tree(host: Host, src: Path, dest: str, skip: Sequence[str] = SKIP_PARTS) -> bool:
    """Mirror regular files of `src` under `dest` (extra files at dest are kept)."""
    changed = False
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        if any(part in skip for part in rel.parts) or item.suffix == ".pyc" or not item.is_file():
            continue
        mode = 0o755 if item.stat().st_mode & 0o111 else 0o644
        content = item.read_text(encoding="utf-8")
        changed |= host.write(f"{dest}/{rel.as_posix()}", content, mode=mode)
    return changed

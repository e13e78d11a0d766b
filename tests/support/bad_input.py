"""The error policy every entry point keeps (docs/contracts.md, "Errors"), as one assertion: a user's
mistake ends with exit status 2, exactly one stderr line starting `error:`, no traceback, and nothing
left where the output would have gone."""

from __future__ import annotations

import subprocess
from pathlib import Path


def listing(root: Path) -> set[str]:
    """Every path under `root` (hidden ones included), to compare before and after a failed command."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_user_error(result: subprocess.CompletedProcess[str], root: Path, before: set[str]) -> str:
    """The one error line, after checking the policy; `root` must hold exactly `before` again."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert listing(root) == before, f"left behind: {sorted(listing(root) - before)}"
    return lines[0]

"""Fixtures of the lifecycle tests; the helpers live in lifecycle_fakes.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lifecycle_daemons import start_munged, stop
from lifecycle_fakes import make_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh node's filesystem root."""
    return make_root(tmp_path / "node")


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory the slurm user can reach too (pytest's own tmp is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="lifecycle-daemons-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def munge(work: Path) -> Iterator[Path]:
    """This test's own munged; its socket path."""
    try:
        yield start_munged(work / "munge")
    finally:
        stop(work / "munge/munged.pid")

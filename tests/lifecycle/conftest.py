"""Fixtures of the lifecycle tests; the helpers live in lifecycle_fakes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_fakes import make_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh node's filesystem root."""
    return make_root(tmp_path / "node")

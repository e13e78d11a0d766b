"""Build an expensive session fixture once per test session, even when pytest-xdist runs the session in
several worker processes (`make unit`): the first worker to ask builds it under a lock in the session's
shared temporary directory, and the others read what it wrote. Without xdist it is built as before."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`name`'s directory, `build(directory)` run into it first by exactly one process of this session."""
    base = tmp_path_factory.getbasetemp()
    # xdist gives each worker basetemp/<session>/popen-gwN; the session directory above is theirs alone
    root = base.parent if base.name.startswith("popen-gw") else base
    target = root / f"shared-{name}"
    with (root / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / f"shared-{name}.done"
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)  # a build that failed in another worker
            target.mkdir()
            build(target)
            done.touch()
    return target

"""Outputs get the mode the user's umask asks for, so the group can read them on the shared file system.

tempfile's mkstemp/mkdtemp create 0600 files and 0700 directories whatever the umask; the
atomic writers must not pass that on to what jobs leave on FSx (and export to S3).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.fsio import atomic_output_dir, write_text_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_atomically_written_file_is_readable_by_the_group(tmp_path: Path, umask_022: None) -> None:
    path = write_text_atomic(tmp_path / "metrics.jsonl", "{}\n")
    assert mode(path) == 0o644


def test_an_atomic_output_directory_is_readable_by_the_group(tmp_path: Path, umask_022: None) -> None:
    out = tmp_path / "merged"
    with atomic_output_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert mode(out) == 0o755


def test_the_umask_still_rules(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_text_atomic(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_an_output_directory_keeps_the_setgid_bit_of_a_shared_parent(tmp_path: Path, umask_022: None) -> None:
    shared = tmp_path / "runs"
    shared.mkdir()
    shared.chmod(0o2755)  # the lifecycle's shared tree: files below keep the directory's group
    out = shared / "adapter"
    with atomic_output_dir(out) as tmp:
        (tmp / "adapter_config.json").write_text("{}")
    assert mode(out) == 0o2755

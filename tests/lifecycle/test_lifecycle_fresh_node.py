"""The one description of a node fresh from the HyperPod image (provision.fresh_node), as the dry run
and the tests build it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lifecycle_fakes import LIFECYCLE, make_root
from provision.fresh_node import AUTHORIZED_KEY, make_fresh_node


def test_the_file_systems_top_is_0755_and_owned_by_root_where_root_builds_it(tmp_path: Path):
    fsx = make_root(tmp_path / "node") / "fsx"
    assert (fsx.stat().st_uid, fsx.stat().st_mode & 0o7777) == (0 if os.geteuid() == 0 else os.geteuid(), 0o755)
    assert "/fsx" not in (tmp_path / "node/proc/mounts").read_text()  # nothing mounted yet


def test_the_default_users_home_is_local_with_its_dotfiles_and_key(tmp_path: Path):
    home = make_root(tmp_path / "node") / "home/ubuntu"
    assert (home / ".bashrc").is_file()
    assert (home / ".ssh/authorized_keys").read_text() == AUTHORIZED_KEY + "\n"


def test_python3_is_the_images_3_10(tmp_path: Path):
    usr_bin = make_root(tmp_path / "node") / "usr/bin"
    assert os.readlink(usr_bin / "python3") == "python3.10" and (usr_bin / "python3.10").is_file()


def test_a_root_that_is_not_empty_is_refused(tmp_path: Path):
    (tmp_path / "node").mkdir()
    (tmp_path / "node/keep").write_text("mine\n")
    with pytest.raises(FileExistsError, match="is not empty"):
        make_fresh_node(tmp_path / "node")
    assert (tmp_path / "node/keep").read_text() == "mine\n"


def test_the_command_line_says_what_is_wrong_and_exits_2(tmp_path: Path):
    (tmp_path / "node").mkdir()
    (tmp_path / "node/keep").touch()
    proc = subprocess.run([sys.executable, "-m", "provision.fresh_node", str(tmp_path / "node")],
                          cwd=LIFECYCLE, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'node'} is not empty: a fresh node starts from nothing"]

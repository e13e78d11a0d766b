"""The scripts themselves: shellcheck-clean shell, and Python the AMI's python3 can run."""

from __future__ import annotations

import ast
import shutil
import subprocess

import pytest
from lifecycle_fakes import LIFECYCLE

SHELL_SCRIPTS = sorted(LIFECYCLE.rglob("*.sh"))
PYTHON_FILES = sorted(LIFECYCLE.rglob("*.py"))


def test_there_are_scripts_to_check():
    assert {p.name for p in SHELL_SCRIPTS} >= {"on_create.sh", "cluster_check.sh"}
    assert len(PYTHON_FILES) > 10


def test_shell_scripts_are_shellcheck_clean():
    assert shutil.which("shellcheck"), "shellcheck not installed: run `make setup`"
    proc = subprocess.run(
        ["shellcheck", "-x", *map(str, SHELL_SCRIPTS)], capture_output=True, text=True, cwd=LIFECYCLE
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_stop_on_errors(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(LIFECYCLE)))
def test_python_parses_as_python_3_8(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(LIFECYCLE)))
def test_python_imports_only_the_standard_library_and_itself(path):
    import sys

    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top == "provision" or top == "__future__" or top in sys.stdlib_module_names, name


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(LIFECYCLE)))
def test_python_postpones_annotations_for_3_8(path):
    """`list[str]` and `X | None` in annotations only work on 3.8 when they are never evaluated."""
    if path.read_text().strip():
        tree = ast.parse(path.read_text())
        has_code = any(not isinstance(n, ast.Expr) for n in tree.body)
        if has_code:
            assert "from __future__ import annotations" in path.read_text()

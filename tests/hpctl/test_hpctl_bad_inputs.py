"""Every hpctl command keeps the error policy on bad input (tests/support/bad_input.py): exit 2, one
`error:` line naming what is wrong, no traceback, nothing written. The console script runs with no AWS
region and no credentials, so each mistake must be found before any AWS call (one would end in exit 1).
The rows are kinds of mistake (a bad option value, an unknown option or command, a local file that is
missing, a directory or binary), not special cases: the policy lives in hpctl.main._Group."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input import assert_user_error, listing

Row = tuple[Callable[[Path], list[str]], str]  # argv given a scratch directory, what the line must contain


def _binary(work: Path) -> str:
    path = work / "sacct.out"
    path.write_bytes(bytes(range(256)) * 8)
    return str(path)


ROWS: list[Row] = [
    (lambda w: ["nope"], "nope"),
    (lambda w: ["cost", "--nope"], "--nope"),
    (lambda w: ["cost", "--hours", "two"], "--hours"),
    (lambda w: ["cost", "--hours", "2", "--count", "0"], "--count"),
    (lambda w: ["cost", "--hours", "nan"], "--hours"),
    (lambda w: ["status", "--wait", "--interval", "inf"], "--interval"),
    (lambda w: ["cost"], "--hours"),
    (lambda w: ["cost", "--hours", "1", "--samples", "10"], "exactly one"),
    (lambda w: ["cost", "--hours", "1", "--price-per-hour", "-3"], "--price-per-hour"),
    (lambda w: ["cost", "--hours", "1", "--instance-type", "ml.p9.huge"], "ml.p9.huge"),
    (lambda w: ["cost", "--sacct", str(w / "none.txt")], "none.txt"),
    (lambda w: ["cost", "--sacct", str(w)], "Is a directory"),
    (lambda w: ["cost", "--sacct", _binary(w)], "not text"),
    (lambda w: ["upload", str(w / "none")], "does not exist"),
    (lambda w: ["upload", str(w), "--name", "a/b"], "--name"),
    (lambda w: ["upload"], "'path'"),
    (lambda w: ["ssh", "--print-config", "--ssh-config", str(w)], "is a directory"),
    (lambda w: ["ssh", "--print-config", "--alias", "two words"], "--alias"),
    (lambda w: ["status", "--timeout", "-5"], "--timeout"),
    (lambda w: ["status", "--cluster", "arn:aws:sagemaker:us-west-2:1:notebook/x"], "ARN"),
    (lambda w: ["validate", "--context-file", str(w / "cdk.json")], "cdk.json"),
    (lambda w: ["validate", "--workers", "many"], "--workers"),
    (lambda w: ["report", "--run", "../etc"], "--run"),
    (lambda w: ["report", "--dest", _binary(w)], "--dest"),
]


def test_every_command_has_bad_input_rows(tmp_path: Path) -> None:
    """A new hpctl command joins the table, so the policy is checked for it too."""
    from hpctl.main import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    covered = {argv(tmp_path)[0] for argv, _ in ROWS}
    assert commands - covered == set()


@pytest.fixture
def no_aws(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    return env


@pytest.mark.parametrize(("argv", "names"), ROWS, ids=[f"{i}-{n}" for i, (_, n) in enumerate(ROWS)])
def test_a_bad_input_is_one_error_line_exit_2_before_any_aws_call(
        argv: Callable[[Path], list[str]], names: str, tmp_path: Path, no_aws: dict[str, str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args = argv(work)
    before = listing(work)
    hpctl = Path(sys.executable).with_name("hpctl")
    result = subprocess.run([str(hpctl), *args], capture_output=True, text=True, timeout=60, check=False,
                            env=no_aws, cwd=work, stdin=subprocess.DEVNULL)
    line = assert_user_error(result, work, before)
    assert names in line

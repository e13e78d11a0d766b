"""Every hpctl command keeps the error policy on bad input (tests/support/bad_input.py): exit 2, one
`error:` line naming what is wrong, no traceback, nothing written. The console script runs with no AWS
region and no credentials, so each mistake must be found before any AWS call (one would end in exit 1).
The rows are kinds of mistake (a bad option value, an unknown option or command, a local file that is
missing, a directory or binary), not special cases: the policy lives in hpctl.main._Group.
Each is answered before the AWS SDK is even imported (importing it is most of hpctl's start-up), which
Python's own import log (PYTHONPROFILEIMPORTTIME, the environment form of -X importtime) shows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input import assert_user_error, listing

Row = tuple[Callable[[Path], list[str]], str]  # argv given a scratch directory, what the line must contain

# The AWS SDK's packages: imported once a command talks to AWS, never to answer --help or a mistake.
AWS_SDK = {"boto3", "botocore", "s3transfer"}


def run_hpctl(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The console script as a user runs it; its result without Python's import log, and the top-level
    packages that log names."""
    hpctl = Path(sys.executable).with_name("hpctl")
    result = subprocess.run([str(hpctl), *args], capture_output=True, text=True, timeout=60, check=False,
                            env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=cwd, stdin=subprocess.DEVNULL)
    log = [line for line in result.stderr.splitlines(keepends=True) if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in log[1:]}  # log[0]: the header
    stderr = "".join(line for line in result.stderr.splitlines(keepends=True) if line not in log)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr), imported


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
    result, imported = run_hpctl(args, no_aws, work)
    line = assert_user_error(result, work, before)
    assert names in line
    assert imported & AWS_SDK == set()


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"]], ids=["hpctl", "command"])
def test_help_does_not_import_the_aws_sdk(args: list[str], tmp_path: Path, no_aws: dict[str, str]) -> None:
    result, imported = run_hpctl(args, no_aws, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: hpctl" in result.stdout and result.stderr == ""
    assert "typer" in imported and imported & AWS_SDK == set()


def test_a_command_that_talks_to_aws_does_import_the_sdk(tmp_path: Path, no_aws: dict[str, str]) -> None:
    """The import log sees the SDK when it is imported: the checks above can fail."""
    result, imported = run_hpctl(["status", "--cluster", "c"], no_aws, tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert imported >= AWS_SDK

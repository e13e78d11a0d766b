"""AWS failures end as one line saying what to do, with a non-zero exit: never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import botocore.exceptions as bce
import pytest
from botocore.stub import Stubber
from hpctl_world import REGION, Cli, World
from typer.testing import CliRunner

from hpctl.aws import Aws, explain
from hpctl.main import app
from hpctl.runtime import Runtime


def _run(*args: str, runtime: Runtime | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, list(args), obj=runtime or Runtime(), catch_exceptions=False)
    return result.exit_code, result.output.splitlines()


def test_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, lines = _run("--region", REGION, "status")
    assert code == 1
    assert lines == [
        "error: no AWS credentials found: run `aws configure` or `aws sso login`, or pass --profile"
    ]


def test_no_region_names_the_variable_boto3_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = _run("status")
    assert code == 1
    assert lines == ["error: no AWS region: pass --region or set AWS_DEFAULT_REGION"]
    variable = lines[0].rsplit(" ", 1)[-1]
    monkeypatch.setenv(variable, "eu-north-1")  # following the advice must give boto3 its region
    assert boto3.Session().region_name == "eu-north-1"


def test_unknown_profile() -> None:
    code, lines = _run("--profile", "nope", "status")
    assert code == 1
    assert lines == [
        "error: The config profile (nope) could not be found: check --profile against ~/.aws/config"
    ]


def test_expired_credentials(world: World, make_cli: Callable[[Aws], Cli]) -> None:
    aws = Aws(world.session)
    with Stubber(aws.client("cloudformation")) as stubber:
        stubber.add_client_error(
            "describe_stacks", "ExpiredToken", "The security token included in the request is expired"
        )
        result = make_cli(aws)("status")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: ExpiredToken: The security token included in the request is expired — "
        "your credentials expired: refresh them (aws sso login, or new keys)"
    ]


def test_an_unreachable_endpoint_points_at_the_region() -> None:
    exc = bce.EndpointConnectionError(endpoint_url="https://api.sagemaker.mars-1.amazonaws.com/")
    assert explain(exc) == (
        'Could not connect to the endpoint URL: "https://api.sagemaker.mars-1.amazonaws.com/": '
        "check --region (is the service offered there?) and your network"
    )


def test_the_console_script_answers_help() -> None:
    script = Path(sys.executable).with_name("hpctl")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("ssh", "status", "validate", "upload", "cost"):
        assert f"  {command} " in result.stdout

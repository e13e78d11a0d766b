"""Views of the stack synthesized once per session (tests/conftest.py): the Template
assertions object, the cluster and the uploaded provisioning_parameters.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import assertions
from infra_template import only
from moto import mock_aws

from infra.config import ClusterConfig


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """moto's AWS in the stack's region, with no real credentials or profile in reach."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=ClusterConfig().region)


@pytest.fixture(scope="session")
def stack(template: dict[str, Any]) -> assertions.Template:
    return assertions.Template.from_json(template)


@pytest.fixture(scope="session")
def cluster(template: dict[str, Any]) -> dict[str, Any]:
    return only(template, "AWS::SageMaker::Cluster")[1]


@pytest.fixture(scope="session")
def provisioning(template: dict[str, Any], assembly_dir: Path) -> dict[str, Any]:
    """provisioning_parameters.json as uploaded, each deploy-time marker replaced by
    the CloudFormation expression BucketDeployment substitutes for it."""
    _, deployment = only(template, "Custom::CDKBucketDeployment")
    keys = deployment["Properties"]["SourceObjectKeys"]
    for index, key in enumerate(keys):
        staged = assembly_dir / f"asset.{key.removesuffix('.zip')}" / "provisioning_parameters.json"
        if staged.is_file():
            text = staged.read_text()
            for marker, expression in deployment["Properties"]["SourceMarkers"][index].items():
                text = text.replace(marker, _name(expression))
            data: dict[str, Any] = json.loads(text)
            return data
    raise AssertionError("provisioning_parameters.json is not among the uploaded sources")


def _name(expression: dict[str, Any]) -> str:
    """{"Ref": "X"} -> "{Ref:X}", {"Fn::GetAtt": ["X", "A"]} -> "{X.A}"."""
    if "Ref" in expression:
        return "{Ref:" + expression["Ref"] + "}"
    lid, attr = expression["Fn::GetAtt"]
    return "{" + f"{lid}.{attr}" + "}"

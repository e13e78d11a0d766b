"""What checks the whole template: cfn-lint, cdk-nag, and offline synth."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint
from infra_template import synthesized

from infra.build import STACK_NAME_DEFAULT, build_app
from infra.config import ClusterConfig


def _lint_errors(template: dict[str, Any]) -> list[str]:
    matches = lint(json.dumps(template), config=ManualArgs(regions=[ClusterConfig().region]))
    return [str(m) for m in matches if m.rule.severity == "error"]


def test_cfn_lint_finds_no_errors(template: dict[str, Any]) -> None:
    assert _lint_errors(template) == []


def test_cfn_lint_catches_a_bad_instance_type(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    (cluster,) = [r for r in broken["Resources"].values() if r["Type"] == "AWS::SageMaker::Cluster"]
    cluster["Properties"]["InstanceGroups"][-1]["InstanceType"] = "ml.trn1.64xlarge"

    assert any("ml.trn1.64xlarge" in error for error in _lint_errors(broken))


def test_synth_needs_no_context_lookups(assembly_dir: Path) -> None:
    manifest = json.loads((assembly_dir / "manifest.json").read_text())

    assert manifest.get("missing", []) == []


def test_synth_fails_on_an_unacknowledged_cdk_nag_finding(tmp_path: Path) -> None:
    app = build_app(outdir=str(tmp_path))
    stack = app.node.find_child(STACK_NAME_DEFAULT)
    assert isinstance(stack, Stack)
    s3.CfnBucket(stack, "Unchecked")  # no encryption, logging or TLS policy

    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    findings = [line for line in str(failure.value).splitlines() if line.startswith("   ")]
    assert any("AwsSolutions-S1'" in line for line in findings)
    # Only the bucket added here is reported: everything the stack builds passes or is acknowledged.
    assert {line.split()[0] for line in findings if not line.strip().startswith("Acknowledge")} == {
        f"{STACK_NAME_DEFAULT}/Unchecked"
    }


def test_synth_passes_in_an_account_bootstrapped_with_a_custom_qualifier(tmp_path: Path) -> None:
    """`cdk bootstrap --qualifier abc123xyz` names the asset bucket cdk-abc123xyz-assets-...;
    the acknowledgement for BucketDeployment's access to it must follow."""
    template = synthesized(tmp_path, **{"@aws-cdk/core:bootstrapQualifier": "abc123xyz"})

    assert "cdk-abc123xyz-assets-" in json.dumps(template)
    assert "hnb659fds" not in json.dumps(template["Resources"])

"""What hpctl assumes about the stack matches what infra/ builds (docs/contracts.md)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hpctl import cluster
from infra.build import STACK_NAME_DEFAULT
from infra.provisioning import CONTROLLER_GROUP

# The output keys StackOutputs is read from (one per field but stack_name)
READ_KEYS = {
    "ClusterName",
    "ClusterArn",
    "ControllerGroupName",
    "BucketName",
    "SsmRunAsDocumentName",
    "SsmTargetPrefix",
}


def test_hpctl_defaults_to_the_stack_app_py_deploys() -> None:
    assert cluster.DEFAULT_STACK == STACK_NAME_DEFAULT


def test_hpctl_defaults_to_the_controller_group_the_stack_creates() -> None:
    assert cluster.DEFAULT_CONTROLLER_GROUP == CONTROLLER_GROUP


def test_every_output_hpctl_reads_is_in_the_template(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= READ_KEYS
    assert len(fields(cluster.StackOutputs)) == len(READ_KEYS) + 1  # + stack_name

"""What hpctl assumes about the stack matches what the synthesized app builds (docs/contracts.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpctl_world import World

from hpctl import cluster


def test_hpctl_defaults_to_the_stack_the_app_synthesizes(assembly_dir: Path) -> None:
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    stacks = {
        artifact.get("properties", {}).get("stackName", name)
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {cluster.DEFAULT_STACK}


def test_without_stack_outputs_hpctl_assumes_the_templates_controller_group(template: dict[str, Any]) -> None:
    # `hpctl ssh --cluster NAME` has no stack outputs to read the group from: it must guess the group the
    # stack creates for the controller (the one group on the controller's instance type)
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Cluster"]
    groups = {g["InstanceGroupName"]: g["InstanceType"] for g in resource["Properties"]["InstanceGroups"]}
    assert cluster.DEFAULT_CONTROLLER_GROUP in groups
    assert groups[cluster.DEFAULT_CONTROLLER_GROUP].startswith("ml.c5")


def test_every_stack_output_hpctl_reads_has_a_value(world: World) -> None:
    outputs = cluster.StackOutputs.from_outputs(world.stack_name, world.outputs)
    unset = [name for name, value in vars(outputs).items() if not value]
    assert unset == []

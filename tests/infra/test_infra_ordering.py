"""Create-time ordering that CloudFormation only gets right when the template says so.

FSx for Lustre checks its security groups when it is created and refuses with
InvalidNetworkSettings unless they already allow Lustre traffic (port 988) between
their members; AWS ParallelCluster hit exactly this race (aws/aws-parallelcluster
issue 6181, fixed by DependsOn on every rule in PR 6342; FSx docs: "File system access
control with Amazon VPC", https://docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html).
HyperPod's nodes likewise need the EFA rules (all traffic to and from the group) before
they boot. moto checks none of this, so the template's dependency graph is read here.
"""

from __future__ import annotations

from typing import Any

import pytest
from infra_template import all_dependencies, only, resources

RULE_TYPES = ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")


def _group_ids(value: Any) -> set[str]:
    """Logical ids of the security groups a list of SecurityGroupIds points at."""
    return {item["Fn::GetAtt"][0] for item in value if isinstance(item, dict) and "Fn::GetAtt" in item}


def _rules_of(template: dict[str, Any], groups: set[str]) -> set[str]:
    return {
        lid
        for rule_type in RULE_TYPES
        for lid, rule in resources(template, rule_type).items()
        if _group_ids([rule["Properties"]["GroupId"]]) & groups
    }


def _security_groups(template: dict[str, Any], resource_type: str) -> set[str]:
    _, body = only(template, resource_type)
    properties = body["Properties"]
    ids = properties.get("SecurityGroupIds") or properties["VpcConfig"]["SecurityGroupIds"]
    return _group_ids(ids)


@pytest.mark.parametrize("resource_type", ["AWS::FSx::FileSystem", "AWS::SageMaker::Cluster"])
def test_created_only_after_every_rule_of_its_security_group(
    template: dict[str, Any], resource_type: str
) -> None:
    lid, _ = only(template, resource_type)
    groups = _security_groups(template, resource_type)
    rules = _rules_of(template, groups)

    assert groups, f"{resource_type} names no security group of this stack"
    assert len(rules) >= 2, "the group's self-referencing ingress and egress rules are separate resources"
    assert rules - all_dependencies(template, lid) == set()


def test_the_dependency_walk_sees_a_rule_that_nothing_waits_for(template: dict[str, Any]) -> None:
    """The check above can fail: a new rule on the group is not yet ordered before FSx."""
    fsx_lid, _ = only(template, "AWS::FSx::FileSystem")
    (group,) = _security_groups(template, "AWS::FSx::FileSystem")
    broken = {**template, "Resources": dict(template["Resources"])}
    broken["Resources"]["LateRule"] = {
        "Type": "AWS::EC2::SecurityGroupIngress",
        "Properties": {"GroupId": {"Fn::GetAtt": [group, "GroupId"]}, "IpProtocol": "tcp"},
    }

    assert "LateRule" in _rules_of(broken, {group})
    assert "LateRule" not in all_dependencies(broken, fsx_lid)

"""Which settings are create-only. A change to a resource's create-only property (the
CloudFormation schema's createOnlyProperties) makes CloudFormation replace it, and so
everything whose create-only properties refer to it. Each setting below is changed on
its own, the stack synthesized again, and the replacements computed; the result must be
infra.config.CREATE_ONLY_SETTINGS, which the README's "Updates" table lists."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from infra_template import all_dependencies, synthesized

from infra.build import ROOT
from infra.config import CREATE_ONLY_SETTINGS, ClusterConfig

REGION = ClusterConfig().region
# One other value for each setting a user may change on a deployed stack.
CHANGES: dict[str, str] = {
    "cluster_name": "trn1-other",
    "vpc_cidr": "10.1.0.0/16",
    "availability_zone": "us-west-2b",
    "availability_zone_id": "usw2-az1",
    "bucket_prefix": "sagemaker-other",
    "existing_bucket_name": "sagemaker-kept-bucket",
    "worker_count": "4",
    "worker_instance_type": "ml.trn1n.32xlarge",
    "controller_instance_type": "ml.c5.2xlarge",
    "login_instance_type": "ml.m5.2xlarge",
    "worker_volume_gib": "1000",
    "fsx_storage_capacity_gib": "2400",
    "fsx_throughput_per_unit": "500",
    "tags": '{"team": "ml"}',
    "node_provisioning_mode": "Continuous",
    "deep_health_checks": '["InstanceConnectivity"]',
}


def _create_only_values(resource: dict[str, Any]) -> list[Any]:
    if resource["Type"].startswith("Custom::"):
        return []
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, resource["Type"]).schema
    values = []
    for path in schema.get("createOnlyProperties", []):
        value: Any = {"properties": resource.get("Properties", {})}
        for part in path.strip("/").split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return values


def _replaced(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Logical ids CloudFormation would replace (or delete) going from `before` to `after`."""
    old, new = before["Resources"], after["Resources"]
    replaced = set(old) - set(new)
    changed = True
    while changed:
        changed = False
        for lid in (set(old) & set(new)) - replaced:
            if old[lid]["Type"] != new[lid]["Type"] or _create_only_values(old[lid]) != _create_only_values(new[lid]) or _create_only_refs(new[lid]) & replaced:
                replaced.add(lid)
                changed = True
    return replaced


def _create_only_refs(resource: dict[str, Any]) -> set[str]:
    """Resources a create-only property refers to: replacing one gives it a new value."""
    return _refs(_create_only_values(resource))


def _refs(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0])
            found |= _refs(arg)
    elif isinstance(value, list):
        for item in value:
            found |= _refs(item)
    return found


@pytest.fixture(scope="module")
def replaced_by(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    return {
        key: _replaced(template, synthesized(tmp_path_factory.mktemp(key), **{key: value}))
        for key, value in CHANGES.items()
    }


def test_the_create_only_settings_are_exactly_those_that_replace_something(
    replaced_by: dict[str, set[str]],
) -> None:
    assert {key for key, lids in replaced_by.items() if lids} == set(CREATE_ONLY_SETTINGS)


def test_a_zone_change_replaces_fsx_and_the_cluster(
    template: dict[str, Any], replaced_by: dict[str, set[str]]
) -> None:
    types = {template["Resources"][lid]["Type"] for lid in replaced_by["availability_zone"]}

    assert {"AWS::EC2::Subnet", "AWS::FSx::FileSystem", "AWS::SageMaker::Cluster"} <= types


def test_the_readme_lists_every_create_only_setting() -> None:
    text = (ROOT / "README.md").read_text()
    updates = text[text.index("**Updates.**") : text.index("**What `cdk destroy` keeps.**")]

    assert [key for key in CREATE_ONLY_SETTINGS if f"`{key}`" not in updates] == []


def test_the_replacement_walk_sees_a_changed_create_only_property(template: dict[str, Any]) -> None:
    """The check above can fail: a subnet moved to another zone is a replacement."""
    after = {**template, "Resources": dict(template["Resources"])}
    (subnet,) = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::EC2::Subnet" and "Private" in lid]
    after["Resources"][subnet] = {
        **template["Resources"][subnet],
        "Properties": {**template["Resources"][subnet]["Properties"], "AvailabilityZone": "us-west-2a"},
    }

    assert subnet in _replaced(template, after)
    assert _replaced(template, template) == set()



def test_everything_a_create_only_change_replaces_waits_for_the_guard(
    template: dict[str, Any], replaced_by: dict[str, set[str]]
) -> None:
    """So the guard's failure comes before any replacement (tests/infra/test_infra_guard.py)."""
    (guard,) = [lid for lid, r in template["Resources"].items() if r["Type"] == "Custom::CreateOnlyGuard"]
    replaced = {lid for key in CREATE_ONLY_SETTINGS for lid in replaced_by[key]}

    assert replaced
    assert [lid for lid in sorted(replaced) if guard not in all_dependencies(template, lid)] == []

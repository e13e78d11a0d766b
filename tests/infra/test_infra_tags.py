"""Cost allocation: every resource that CloudFormation can tag carries the project, the
cluster name and the user's own tags (cdk.json "tags"). A trn1.32xlarge costs about
$21.5 an hour; an untagged one is hard to find on the bill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from infra_template import synthesized

from infra.config import ClusterConfig, ConfigError

REGION = ClusterConfig().region


def _taggable(resource_type: str) -> bool:
    """Per the resource's CloudFormation schema: `tagging.taggable`, or a Tags property."""
    if resource_type.startswith("Custom::"):
        return False
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, resource_type).schema
    tagging = schema.get("tagging")
    if tagging is not None:
        return bool(tagging.get("taggable"))
    return "Tags" in schema.get("properties", {})


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    tags = resource.get("Properties", {}).get("Tags", {})
    return {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags)


def _untagged(template: dict[str, Any], wanted: dict[str, str]) -> list[str]:
    return [
        f"{lid} ({r['Type']}): {_tags(r)}"
        for lid, r in template["Resources"].items()
        if _taggable(r["Type"]) and wanted.items() - _tags(r).items()
    ]


def test_every_taggable_resource_names_the_project_and_the_cluster(template: dict[str, Any]) -> None:
    wanted = {"project": "hyperpod-trn-lora", "hyperpod-cluster": ClusterConfig().cluster_name}

    assert any(_taggable(r["Type"]) for r in template["Resources"].values())
    assert _untagged(template, wanted) == []


def test_the_users_tags_reach_every_taggable_resource_and_win_over_ours(tmp_path: Path) -> None:
    user_tags = {"team": "ml-platform", "project": "llama-lora", "cost-center": "4711"}
    tagged = synthesized(tmp_path, tags=json.dumps(user_tags))

    assert _untagged(tagged, {**user_tags, "hyperpod-cluster": ClusterConfig().cluster_name}) == []


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        ({"aws:createdBy": "me"}, "not starting with 'aws:'"),
        ({"": "x"}, "1-128 characters"),
        ({"team": 7}, "string value"),
        ({"team": "a;b"}, "may hold only"),
        ("not json", "must be JSON"),
        (["team"], "object of names to values"),
    ],
)
def test_a_bad_tag_fails_naming_the_tags_setting(tags: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as error:
        ClusterConfig.from_mapping({"tags": tags})

    assert error.value.key == "tags"

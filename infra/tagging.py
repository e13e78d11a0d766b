"""Tags on every resource: the project, the cluster, and the user's own (cdk.json "tags"),
so a cluster's cost can be found on the bill (a trn1.32xlarge is about $21.5 an hour)."""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import Aspects, CfnResource, IAspect, Stack, TagManager, Tags
from constructs import IConstruct

PROJECT = "hyperpod-trn-lora"
PROJECT_TAG = "project"
CLUSTER_TAG = "hyperpod-cluster"
USER_TAG_PRIORITY = 200  # above CDK's default 100: a user's own "project" tag wins
# aws-cdk-lib's CustomResourceProvider (behind restrict_default_security_group) writes these
# two as plain CfnResources, which Tags.of() cannot reach.
_PLAIN_TAGGABLE_TYPES = frozenset({"AWS::IAM::Role", "AWS::Lambda::Function"})


def tag_stack(stack: Stack, *, cluster_name: str, user_tags: Mapping[str, str]) -> None:
    tags = {PROJECT_TAG: PROJECT, CLUSTER_TAG: cluster_name}
    for key, value in tags.items():
        Tags.of(stack).add(key, value)
    for key, value in user_tags.items():
        Tags.of(stack).add(key, value, priority=USER_TAG_PRIORITY)
    Aspects.of(stack).add(_TagPlainResources({**tags, **user_tags}))


@jsii.implements(IAspect)
class _TagPlainResources:
    def __init__(self, tags: Mapping[str, str]) -> None:
        self._tags = [{"Key": key, "Value": value} for key, value in tags.items()]

    def visit(self, node: IConstruct) -> None:
        if (
            isinstance(node, CfnResource)
            and node.cfn_resource_type in _PLAIN_TAGGABLE_TYPES
            and not TagManager.is_taggable(node)
        ):
            node.add_property_override("Tags", self._tags)

"""Finding the cluster: stack outputs, DescribeCluster and ListClusterNodes as typed values.

A user names either the CloudFormation stack (whose outputs are fixed in
docs/contracts.md) or the HyperPod cluster itself; both end in a `ClusterRef`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpctl.aws import Aws, HpctlError, UsageError, aws_errors
from infra.config import ClusterConfig
from infra.provisioning import CONTROLLER_GROUP

# The controller group name when nothing better is known (the stack output wins).
DEFAULT_CONTROLLER_GROUP = CONTROLLER_GROUP

# The stack app.py deploys; infra.config and infra.provisioning import no CDK, so laptops need none.
# The field's default, not ClusterConfig(): building one checks instance types against botocore's
# SageMaker model, which costs a quarter of a second at every start.
DEFAULT_STACK = ClusterConfig.stack_name

# Statuses after which a cluster will not change by waiting.
STEADY_STATUSES = frozenset({"InService", "Failed", "Deleting"})


@dataclass(frozen=True)
class StackOutputs:
    """The stack outputs hpctl reads (keys per docs/contracts.md)."""

    stack_name: str
    cluster_name: str
    cluster_arn: str
    controller_group: str
    bucket_name: str | None = None
    run_as_document: str | None = None
    ssm_target_prefix: str | None = None

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: Mapping[str, str]) -> StackOutputs:
        missing = [
            key for key in ("ClusterName", "ClusterArn", "ControllerGroupName") if not outputs.get(key)
        ]
        if missing:
            raise HpctlError(
                f"stack {stack_name} has no output {', '.join(missing)}: "
                "is it this project's stack, and did `cdk deploy` finish?"
            )
        return cls(
            stack_name=stack_name,
            cluster_name=outputs["ClusterName"],
            cluster_arn=outputs["ClusterArn"],
            controller_group=outputs["ControllerGroupName"],
            bucket_name=outputs.get("BucketName") or None,
            run_as_document=outputs.get("SsmRunAsDocumentName") or None,
            ssm_target_prefix=outputs.get("SsmTargetPrefix") or None,
        )


@dataclass(frozen=True)
class ClusterRef:
    """Enough to address one cluster: its name or ARN, and what the stack told us."""

    name_or_arn: str
    controller_group: str = DEFAULT_CONTROLLER_GROUP
    run_as_document: str | None = None
    bucket_name: str | None = None

    @classmethod
    def from_stack(cls, outputs: StackOutputs) -> ClusterRef:
        return cls(
            name_or_arn=outputs.cluster_arn,
            controller_group=outputs.controller_group,
            run_as_document=outputs.run_as_document,
            bucket_name=outputs.bucket_name,
        )


@dataclass(frozen=True)
class InstanceGroup:
    name: str
    instance_type: str
    current_count: int
    target_count: int


@dataclass(frozen=True)
class Cluster:
    name: str
    arn: str
    status: str
    failure_message: str
    groups: tuple[InstanceGroup, ...]

    @property
    def cluster_id(self) -> str:
        return cluster_id_from_arn(self.arn)


@dataclass(frozen=True)
class Node:
    group: str
    instance_id: str
    instance_type: str
    status: str
    message: str
    launch_time: datetime | None


def cluster_id_from_arn(arn: str) -> str:
    """`arn:aws:sagemaker:<region>:<account>:cluster/<id>` -> `<id>` (SSM targets use the id)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "sagemaker" or not parts[5].startswith("cluster/"):
        raise UsageError(
            f"--cluster: not a HyperPod cluster ARN: {arn!r} (want arn:aws:sagemaker:<region>:<account>:cluster/<id>)"
        )
    cluster_id = parts[5].removeprefix("cluster/")
    if not cluster_id or "/" in cluster_id:
        raise UsageError(f"--cluster: not a HyperPod cluster ARN: {arn!r} (no cluster id after cluster/)")
    return cluster_id


def stack_outputs(aws: Aws, stack_name: str) -> StackOutputs:
    with aws_errors():
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
    return StackOutputs.from_outputs(stack_name, outputs)


def resolve(connect: Callable[[], Aws], *, stack: str | None, cluster: str | None) -> ClusterRef:
    """The cluster a command is about: `--cluster` if given, else the stack's outputs (the only case
    that connects to AWS)."""
    if cluster:
        if cluster.startswith("arn:"):
            cluster_id_from_arn(cluster)  # a malformed ARN is the user's typo: say so before any AWS call
        return ClusterRef(name_or_arn=cluster)
    if not stack:
        raise UsageError("name the cluster: --stack STACK or --cluster NAME_OR_ARN")
    return ClusterRef.from_stack(stack_outputs(connect(), stack))


def describe(aws: Aws, ref: ClusterRef) -> Cluster:
    with aws_errors():
        raw = aws.client("sagemaker").describe_cluster(ClusterName=ref.name_or_arn)
    return Cluster(
        name=raw["ClusterName"],
        arn=raw["ClusterArn"],
        status=raw["ClusterStatus"],
        failure_message=raw.get("FailureMessage") or "",
        groups=tuple(_group(g) for g in raw.get("InstanceGroups", [])),
    )


def _group(raw: Mapping[str, Any]) -> InstanceGroup:
    return InstanceGroup(
        name=raw["InstanceGroupName"],
        instance_type=raw["InstanceType"],
        current_count=int(raw.get("CurrentCount", 0)),
        target_count=int(raw.get("TargetCount", 0)),
    )


def list_nodes(aws: Aws, ref: ClusterRef, group: str | None = None) -> list[Node]:
    """All nodes, or those of one group (exact name: the API only filters by substring)."""
    kwargs: dict[str, str] = {"ClusterName": ref.name_or_arn}
    if group:
        kwargs["InstanceGroupNameContains"] = group
    nodes: list[Node] = []
    with aws_errors():
        for page in aws.client("sagemaker").get_paginator("list_cluster_nodes").paginate(**kwargs):
            nodes.extend(_node(n) for n in page["ClusterNodeSummaries"])
    return [n for n in nodes if group is None or n.group == group]


def _node(raw: Mapping[str, Any]) -> Node:
    status = raw.get("InstanceStatus", {})
    return Node(
        group=raw["InstanceGroupName"],
        instance_id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        status=status.get("Status", "Unknown"),
        message=status.get("Message", ""),
        launch_time=raw.get("LaunchTime"),
    )


def pick_node(nodes: list[Node], *, group: str | None, instance_id: str | None = None) -> Node:
    """The named instance, else the group's first Running node; an error says what exists."""
    if instance_id:
        for node in nodes:
            if node.instance_id == instance_id:
                return node
        where = f"group {group}" if group else "the cluster"
        raise HpctlError(f"no node {instance_id} in {where}: `hpctl status` lists the nodes")
    if group is None:
        raise UsageError("name a node: --group GROUP and/or --instance INSTANCE_ID")
    if not nodes:
        raise HpctlError(f"instance group {group} has no nodes: check --group against `hpctl status`")
    for node in nodes:
        if node.status == "Running":
            return node
    states = ", ".join(f"{n.instance_id} {n.status}" for n in nodes)
    raise HpctlError(f"no Running node in group {group} ({states}): wait with `hpctl status --wait`")


def wait_in_service(
    aws: Aws,
    ref: ClusterRef,
    *,
    timeout_s: float,
    interval_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    on_poll: Callable[[Cluster], None],
) -> Cluster:
    """Poll until InService; a Failed cluster raises with the platform's own message."""
    deadline = clock() + timeout_s
    while True:
        cluster = describe(aws, ref)
        on_poll(cluster)
        if cluster.status == "InService":
            return cluster
        if cluster.status in STEADY_STATUSES:
            reason = cluster.failure_message or "no failure message"
            raise HpctlError(f"cluster {cluster.name} is {cluster.status}: {reason}")
        if clock() >= deadline:
            raise HpctlError(
                f"cluster {cluster.name} is still {cluster.status} after {timeout_s / 60:g} min: "
                "run `hpctl status --wait` again, or look at the SageMaker console"
            )
        sleep(interval_s)

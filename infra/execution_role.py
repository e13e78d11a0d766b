"""The role HyperPod nodes run as: trusted by SageMaker, with the managed HyperPod
instance policy and the network-interface rights HyperPod needs to attach nodes to
our VPC. Data access (bucket prefixes, the token secret) is granted by the stack.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.nag import acknowledge, wildcard_resource

INSTANCE_POLICY = "AmazonSageMakerClusterInstanceRolePolicy"

# What HyperPod does in our VPC on the cluster's behalf (HyperPod's documented VPC
# permissions). ENI ids are unknown until creation, hence Resource "*".
_ENI_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DetachNetworkInterface",
]


class ExecutionRole(Construct):
    """`role` is what the instance groups' ExecutionRole names."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker HyperPod cluster nodes",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(INSTANCE_POLICY)],
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=_ENI_ACTIONS, resources=["*"]))
        interfaces = Stack.of(self).format_arn(service="ec2", resource="network-interface", resource_name="*")
        self.role.add_to_policy(iam.PolicyStatement(actions=["ec2:CreateTags"], resources=[interfaces]))
        acknowledge(
            self.role,
            "AWS maintains this policy for HyperPod nodes (logs, metrics, SSM); a copy would drift from the service",
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{INSTANCE_POLICY}]",
        )
        acknowledge(
            self.role,
            "HyperPod creates the nodes' network interfaces while the cluster runs; their ids do not exist at deploy time",
            "AwsSolutions-IAM5[Resource::*]",
            wildcard_resource(self, interfaces),
        )

"""The cluster's network: one private subnet in the chosen zone (every node and FSx
share it, so EFA and Lustre traffic never crosses zones), a public subnet for the NAT
gateway, an S3 gateway endpoint, flow logs, and the cluster security group.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import Aspects, IAspect, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

PRIVATE_SUBNET_MASK = 18  # trn1.32xlarge nodes take an address per EFA interface
PUBLIC_SUBNET_MASK = 24


class Network(Construct):
    """VPC and security group; `private_subnet` is where the cluster and FSx live."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        availability_zone: str,
        availability_zone_id: str | None,
        cidr: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            availability_zones=[availability_zone],
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_SUBNET_MASK
                ),
                ec2.SubnetConfiguration(
                    name="Private",
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                    cidr_mask=PRIVATE_SUBNET_MASK,
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        logs.LogGroup(self, "FlowLogs", retention=logs.RetentionDays.ONE_MONTH)
                    ),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            # Nothing uses the default group; strip its rules so nothing can.
            restrict_default_security_group=True,
        )
        (self.private_subnet,) = self.vpc.private_subnets
        if availability_zone_id:
            # Names differ per account, IDs do not; ec2.Vpc only takes names, so the subnets
            # are moved to the ID here (CreateSubnet takes either, not both).
            for subnet in [*self.vpc.public_subnets, *self.vpc.private_subnets]:
                cfn_subnet = subnet.node.default_child
                assert isinstance(cfn_subnet, ec2.CfnSubnet)
                cfn_subnet.add_property_deletion_override("AvailabilityZone")
                cfn_subnet.availability_zone_id = availability_zone_id

        # EFA needs all traffic to and from the group itself. With all outbound allowed
        # (packages, Hugging Face Hub, AWS APIs through the NAT) CDK drops further egress
        # rules, so the self-referencing one is emitted explicitly.
        self.security_group = ec2.SecurityGroup(
            self,
            "ClusterSecurityGroup",
            vpc=self.vpc,
            description="HyperPod nodes and FSx for Lustre: all traffic within the group (EFA)",
            allow_all_outbound=True,
        )
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_traffic(), "EFA and Slurm between nodes, Lustre to FSx"
        )
        ec2.CfnSecurityGroupEgress(
            self,
            "SelfEgress",
            group_id=self.security_group.security_group_id,
            ip_protocol="-1",
            destination_security_group_id=self.security_group.security_group_id,
            description="EFA requires self-referencing egress",
        )


class ExistingNetwork(Construct):
    """The user's own VPC, private subnet and security group, with Network's attributes.
    The group is imported immutable: nothing here adds rules to someone else's group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str,
        subnet_id: str,
        security_group_id: str,
        availability_zone: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id=vpc_id, availability_zones=[availability_zone], private_subnet_ids=[subnet_id]
        )
        self.private_subnet = ec2.Subnet.from_subnet_attributes(
            self, "Subnet", subnet_id=subnet_id, availability_zone=availability_zone
        )
        self.security_group = ec2.SecurityGroup.from_security_group_id(
            self, "SecurityGroup", security_group_id, mutable=False
        )


@jsii.implements(IAspect)
class _AfterRules:
    """Makes `dependents` wait for every ingress/egress rule of `group`, wherever in the
    stack the rule was added (FSx's own L2 adds its 988-1023 rule, for one)."""

    def __init__(self, group: ec2.ISecurityGroup, dependents: Sequence[IConstruct]) -> None:
        self._group = group
        self._dependents = dependents

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, (ec2.CfnSecurityGroupIngress, ec2.CfnSecurityGroupEgress)):
            return
        stack = Stack.of(node)
        if stack.resolve(node.group_id) == stack.resolve(self._group.security_group_id):
            for dependent in self._dependents:
                dependent.node.add_dependency(node)


def create_after_rules(group: ec2.ISecurityGroup, *dependents: IConstruct) -> None:
    """FSx validates its security groups at creation (InvalidNetworkSettings unless port 988
    is open between members: aws/aws-parallelcluster issue 6181, fixed by DependsOn in PR
    6342), and HyperPod nodes need the EFA rules as they boot; CloudFormation orders
    neither by itself, since a separate rule is not referenced by what it protects."""
    Aspects.of(Stack.of(group)).add(_AfterRules(group, dependents))

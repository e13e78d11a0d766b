"""The network: one private subnet in the configured zone behind a NAT, an S3
endpoint, flow logs, and the security group EFA needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint
from infra_template import only, resources, synthesized
from moto import mock_aws

from infra.config import ClusterConfig

ZONE = ClusterConfig().availability_zone


def _subnet_id(cluster: dict[str, Any]) -> str:
    (subnet,) = cluster["Properties"]["VpcConfig"]["Subnets"]
    return str(subnet["Ref"])


def _security_group_id(cluster: dict[str, Any]) -> str:
    (group,) = cluster["Properties"]["VpcConfig"]["SecurityGroupIds"]
    return str(group["Fn::GetAtt"][0])


def test_the_cluster_subnet_is_private_in_the_configured_zone(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    subnet = template["Resources"][_subnet_id(cluster)]["Properties"]

    assert subnet["AvailabilityZone"] == ZONE
    assert subnet["MapPublicIpOnLaunch"] is False


def test_the_cluster_subnet_reaches_the_internet_only_through_nat(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    subnet = _subnet_id(cluster)
    (table,) = [
        a["Properties"]["RouteTableId"]["Ref"]
        for a in resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"] == {"Ref": subnet}
    ]
    routes = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == {"Ref": table}
    ]

    assert [r.get("NatGatewayId") is not None for r in routes] == [True]
    assert not any("GatewayId" in r for r in routes)


def test_every_subnet_is_in_the_configured_zone(stack: Template) -> None:
    stack.resource_count_is("AWS::EC2::Subnet", 2)
    stack.all_resources_properties("AWS::EC2::Subnet", {"AvailabilityZone": ZONE})


def test_there_is_one_nat_gateway(stack: Template) -> None:
    stack.resource_count_is("AWS::EC2::NatGateway", 1)


def test_s3_traffic_stays_on_the_gateway_endpoint(stack: Template) -> None:
    stack.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": Match.object_like({"Fn::Join": Match.any_value()})},
    )


def test_vpc_flow_logs_record_all_traffic(stack: Template) -> None:
    stack.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "ResourceType": "VPC"})


def test_the_security_group_allows_all_traffic_from_itself(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    group = _security_group_id(cluster)
    ingress = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]

    assert {"IpProtocol": "-1", "SourceSecurityGroupId": {"Fn::GetAtt": [group, "GroupId"]}} in [
        {k: v for k, v in rule.items() if k in ("IpProtocol", "SourceSecurityGroupId")} for rule in ingress
    ]


def test_the_security_group_allows_all_traffic_to_itself(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    group = {"Fn::GetAtt": [_security_group_id(cluster), "GroupId"]}
    egress = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupEgress").values()]

    assert any(
        rule["GroupId"] == group
        and rule["DestinationSecurityGroupId"] == group
        and rule["IpProtocol"] == "-1"
        for rule in egress
    )


def test_the_security_group_admits_nothing_from_outside(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    group = template["Resources"][_security_group_id(cluster)]["Properties"]

    assert "SecurityGroupIngress" not in group
    assert [rule["CidrIp"] for rule in group["SecurityGroupEgress"]] == ["0.0.0.0/0"]


def test_the_nodes_and_fsx_share_the_security_group(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    _, fsx = only(template, "AWS::FSx::FileSystem")

    assert fsx["Properties"]["SecurityGroupIds"] == cluster["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert fsx["Properties"]["SubnetIds"] == cluster["Properties"]["VpcConfig"]["Subnets"]


def test_a_zone_id_places_every_subnet_by_id_and_moto_accepts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """usw2-az4 is the same physical zone in every account; us-west-2d is not."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    template = synthesized(tmp_path, availability_zone_id="usw2-az4")
    subnets = [r["Properties"] for r in resources(template, "AWS::EC2::Subnet").values()]

    assert [s.get("AvailabilityZoneId") for s in subnets] == ["usw2-az4", "usw2-az4"]
    assert not any("AvailabilityZone" in s for s in subnets)
    errors = lint(json.dumps(template), config=ManualArgs(regions=[ClusterConfig().region]))
    assert [str(e) for e in errors if e.rule.severity == "error"] == []
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=ClusterConfig().region)
        vpc = ec2.create_vpc(CidrBlock=ClusterConfig().vpc_cidr)["Vpc"]["VpcId"]
        created = ec2.create_subnet(
            VpcId=vpc, CidrBlock=subnets[1]["CidrBlock"], AvailabilityZoneId=subnets[1]["AvailabilityZoneId"]
        )["Subnet"]
    assert created["AvailabilityZoneId"] == "usw2-az4"

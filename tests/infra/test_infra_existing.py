"""Bringing your own VPC, subnet, security group and FSx for Lustre: the stack then
creates none of them, changes none of them (no rules added to your group), and points the
cluster, the S3 link and the outputs at yours. hpctl validate checks the existing ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from infra_template import only, resources, synthesized

from infra.config import ClusterConfig, ConfigError

VPC, SUBNET, GROUP = "vpc-0123456789abcdef0", "subnet-0123456789abcdef0", "sg-0123456789abcdef0"
FSX, MOUNT = "fs-0123456789abcdef0", "abcdwxyz"
NETWORK = {"existing_vpc_id": VPC, "existing_subnet_id": SUBNET, "existing_security_group_id": GROUP}
FSX_SETTINGS = {"existing_fsx_id": FSX, "existing_fsx_mount_name": MOUNT}
NETWORK_TYPES = ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup", "AWS::EC2::NatGateway")
RULE_TYPES = ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")


@pytest.fixture(scope="module")
def own_network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesized(tmp_path_factory.mktemp("own-network"), **NETWORK)


@pytest.fixture(scope="module")
def own_everything(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesized(tmp_path_factory.mktemp("own-all"), **NETWORK, **FSX_SETTINGS)


def _types(template: dict[str, Any]) -> set[str]:
    return {r["Type"] for r in template["Resources"].values()}


def test_with_your_network_the_stack_creates_and_changes_no_network(own_network: dict[str, Any]) -> None:
    assert _types(own_network) & {*NETWORK_TYPES, *RULE_TYPES} == set()


def test_with_your_network_the_cluster_and_a_new_fsx_use_your_subnet_and_group(own_network: dict[str, Any]) -> None:
    _, cluster = only(own_network, "AWS::SageMaker::Cluster")
    _, fs = only(own_network, "AWS::FSx::FileSystem")

    assert cluster["Properties"]["VpcConfig"] == {"SecurityGroupIds": [GROUP], "Subnets": [SUBNET]}
    assert (fs["Properties"]["SubnetIds"], fs["Properties"]["SecurityGroupIds"]) == ([SUBNET], [GROUP])


def test_with_your_fsx_it_gets_the_s3_link_and_the_nodes_mount_it(own_everything: dict[str, Any]) -> None:
    _, link = only(own_everything, "AWS::FSx::DataRepositoryAssociation")
    outputs = own_everything["Outputs"]

    assert "AWS::FSx::FileSystem" not in _types(own_everything)
    assert link["Properties"]["FileSystemId"] == FSX
    assert outputs["FsxFileSystemId"]["Value"] == FSX
    assert outputs["FsxMountName"]["Value"] == MOUNT
    assert outputs["FsxDnsName"]["Value"] == {"Fn::Join": ["", [f"{FSX}.fsx.us-west-2.", {"Ref": "AWS::URLSuffix"}]]}


def test_templates_with_your_resources_are_cfn_lint_clean(
    own_network: dict[str, Any], own_everything: dict[str, Any]
) -> None:
    for template in (own_network, own_everything):
        matches = lint(json.dumps(template), config=ManualArgs(regions=[ClusterConfig().region]))
        assert [str(m) for m in matches if m.rule.severity == "error"] == []
    assert resources(own_everything, "AWS::SageMaker::Cluster")


@pytest.mark.parametrize(
    ("context", "key", "says"),
    [
        ({**NETWORK, "existing_vpc_id": "vpc-12"}, "existing_vpc_id", "must look like vpc-0123456789abcdef0"),
        ({**NETWORK, "existing_subnet_id": "subnet-XYZ"}, "existing_subnet_id", "must look like subnet-"),
        ({**NETWORK, "existing_security_group_id": "default"}, "existing_security_group_id", "must look like sg-"),
        ({"existing_subnet_id": SUBNET}, "existing_vpc_id", "set existing_vpc_id, existing_subnet_id"),
        ({**NETWORK, "existing_fsx_id": FSX}, "existing_fsx_mount_name", "is needed with existing_fsx_id"),
        ({**NETWORK, **FSX_SETTINGS, "existing_fsx_mount_name": "Mount/1"}, "existing_fsx_mount_name", "must look like"),
        (FSX_SETTINGS, "existing_fsx_id", "needs the network it lives in"),
    ],
)
def test_an_incomplete_or_malformed_existing_resource_fails_naming_the_key(
    context: dict[str, str], key: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as error:
        ClusterConfig.from_mapping(context)

    assert error.value.key == key

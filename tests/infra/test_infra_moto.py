"""The synthesized FSx and cluster properties, with tokens made concrete, are accepted
by the real API shapes and moto's CreateFileSystem and CreateCluster."""

from __future__ import annotations

from typing import Any

import boto3
from cfn_resolver import Physical, Resolver, pseudo_parameters
from infra_template import only, resources

from infra.config import ClusterConfig

ACCOUNT = "123456789012"
REGION = ClusterConfig().region


def _concrete(template: dict[str, Any], session: boto3.Session) -> Resolver:
    """Real moto resources standing in for the stack's network, role and bucket."""
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=ClusterConfig().vpc_cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.0.0.0/18", AvailabilityZone=ClusterConfig().availability_zone
    )["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="cluster", Description="cluster", VpcId=vpc)["GroupId"]
    role = session.client("iam").create_role(RoleName="exec", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    physical: dict[str, Physical] = {}
    for lid in resources(template, "AWS::EC2::Subnet"):
        physical[lid] = Physical(ref=subnet)
    for lid in resources(template, "AWS::EC2::SecurityGroup"):
        physical[lid] = Physical(ref=group, attrs={"GroupId": group})
    for lid in resources(template, "AWS::IAM::Role"):
        physical[lid] = Physical(ref="exec", attrs={"Arn": role})
    for lid in resources(template, "AWS::S3::Bucket"):
        physical[lid] = Physical(ref=f"sagemaker-test-{lid.lower()}")
        session.client("s3").create_bucket(
            Bucket=physical[lid].ref, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
    return Resolver(template=template, physical=physical, pseudo=pseudo_parameters(REGION, ACCOUNT))


def test_moto_creates_the_file_system_from_the_synthesized_properties(
    template: dict[str, Any], aws: boto3.Session
) -> None:
    values = _concrete(template, aws)
    _, fsx = only(template, "AWS::FSx::FileSystem")
    properties = values.resolve(fsx["Properties"])

    created = aws.client("fsx").create_file_system(**properties)["FileSystem"]

    assert created["LustreConfiguration"]["DeploymentType"] == "PERSISTENT_2"
    assert created["StorageCapacity"] == ClusterConfig().fsx_storage_capacity_gib


def test_moto_creates_the_cluster_from_the_synthesized_properties(
    template: dict[str, Any], cluster: dict[str, Any], aws: boto3.Session
) -> None:
    values = _concrete(template, aws)
    sagemaker = aws.client("sagemaker")

    arn = sagemaker.create_cluster(**values.resolve(cluster["Properties"]))["ClusterArn"]

    described = sagemaker.describe_cluster(ClusterName=arn)
    assert described["ClusterName"] == ClusterConfig().cluster_name
    assert [g["InstanceGroupName"] for g in described["InstanceGroups"]] == [
        "controller-machine",
        "worker-group-1",
    ]

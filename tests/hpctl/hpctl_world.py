"""The moto world hpctl's tests run in: network, role, bucket and FSx, the HyperPod cluster
created from the synthesized AWS::SageMaker::Cluster properties, and a stack with the
template's outputs resolved to those values. Imported by conftest.py and the tests
(a uniquely named module: several test directories have a conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from cfn_resolver import Physical, Resolver, pseudo_parameters
from typer.testing import CliRunner

from hpctl.aws import Aws
from hpctl.main import app
from hpctl.runtime import Runtime

REGION = "us-west-2"
ZONE = "us-west-2b"  # trn1.32xlarge is offered here (moto's offering data)
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class World:
    """The concrete moto resources, and the cluster built on them."""

    session: boto3.Session
    vpc_id: str
    private_subnet_id: str
    public_subnet_id: str
    other_zone_subnet_id: str
    security_group_id: str
    open_security_group_id: str
    role_arn: str
    bucket: str
    fsx_id: str
    cluster_name: str
    cluster_arn: str
    stack_name: str
    outputs: dict[str, str]
    resolver: Resolver  # the template with every token bound to the values above


def _network(ec2: Any) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/20", AvailabilityZone=ZONE)["Subnet"][
        "SubnetId"
    ]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.16.0/20", AvailabilityZone=ZONE)["Subnet"][
        "SubnetId"
    ]
    other = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.32.0/20", AvailabilityZone="us-west-2a")["Subnet"][
        "SubnetId"
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    private_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private)
    ec2.associate_route_table(RouteTableId=private_rt, SubnetId=other)

    sg = ec2.create_security_group(GroupName="hyperpod", Description="cluster", VpcId=vpc)["GroupId"]
    self_rule = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=self_rule)
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=self_rule)
    open_sg = ec2.create_security_group(GroupName="open", Description="no self rule", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "private": private, "public": public, "other": other, "sg": sg, "open_sg": open_sg}


def _bucket_name(resolver: Resolver, lid: str) -> str:
    """The name the template gives the bucket (HyperPod only reads sagemaker-* buckets)."""
    name = resolver.template["Resources"][lid].get("Properties", {}).get("BucketName")
    return str(resolver.resolve(name)) if name else f"sagemaker-{lid.lower()[:40]}"


def _physical(
    resolver: Resolver, net: dict[str, str], role: dict[str, str], fsx: dict[str, str]
) -> dict[str, Physical]:
    """Every resource the cluster properties and outputs may name, by CloudFormation type."""
    by_type: dict[str, Physical] = {
        "AWS::EC2::VPC": Physical(net["vpc"], {"VpcId": net["vpc"]}),
        "AWS::EC2::Subnet": Physical(net["private"], {"SubnetId": net["private"], "AvailabilityZone": ZONE}),
        "AWS::EC2::SecurityGroup": Physical(net["sg"], {"GroupId": net["sg"]}),
        "AWS::IAM::Role": Physical(role["RoleName"], {"Arn": role["Arn"], "RoleId": role["RoleId"]}),
        "AWS::FSx::FileSystem": Physical(
            fsx["FileSystemId"], {"DNSName": fsx["DNSName"], "LustreMountName": fsx["MountName"]}
        ),
        "AWS::SecretsManager::Secret": Physical(
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:hf-token-AbCdEf"
        ),
    }
    physical: dict[str, Physical] = {}
    for resource_type, value in by_type.items():
        for lid in resolver.resource_ids(resource_type):
            physical[lid] = value
    for lid in resolver.resource_ids("AWS::S3::Bucket"):
        name = _bucket_name(resolver, lid)
        physical[lid] = Physical(
            name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        )
    for lid in resolver.resource_ids("AWS::SSM::Document"):
        name = resolver.template["Resources"][lid]["Properties"].get("Name", lid)
        physical[lid] = Physical(name)
    return physical


def build_world(template: dict[str, Any], stack_name: str) -> World:
    """Call inside mock_aws: builds everything and returns it."""
    session = boto3.Session(region_name=REGION)
    ec2 = session.client("ec2")
    net = _network(ec2)
    role = session.client("iam").create_role(
        RoleName="hyperpod-exec", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}'
    )["Role"]
    fsx = session.client("fsx").create_file_system(
        FileSystemType="LUSTRE",
        StorageCapacity=1200,
        SubnetIds=[net["private"]],
        SecurityGroupIds=[net["sg"]],
        LustreConfiguration={"DeploymentType": "PERSISTENT_2", "PerUnitStorageThroughput": 125},
    )["FileSystem"]
    fsx.setdefault("MountName", "abcdefgh")

    pseudo = pseudo_parameters(REGION, ACCOUNT, stack_name)
    resolver = Resolver(template, {}, pseudo)
    resolver = Resolver(template, _physical(resolver, net, role, fsx), pseudo)
    bucket = str(resolver.resolve(template["Outputs"]["BucketName"]["Value"]))
    session.client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    (cluster_lid,) = resolver.resource_ids("AWS::SageMaker::Cluster")
    properties = resolver.resolve(template["Resources"][cluster_lid]["Properties"])
    arn = session.client("sagemaker").create_cluster(**properties)["ClusterArn"]
    name = properties["ClusterName"]

    resolver = Resolver(
        template,
        {**resolver.physical, cluster_lid: Physical(arn, {"ClusterArn": arn, "ClusterName": name})},
        pseudo,
    )
    outputs = {key: str(resolver.resolve(o["Value"])) for key, o in template.get("Outputs", {}).items()}
    session.client("cloudformation").create_stack(
        StackName=stack_name,
        TemplateBody=_outputs_only_template(outputs),
    )
    return World(
        session=session,
        vpc_id=net["vpc"],
        private_subnet_id=net["private"],
        public_subnet_id=net["public"],
        other_zone_subnet_id=net["other"],
        security_group_id=net["sg"],
        open_security_group_id=net["open_sg"],
        role_arn=role["Arn"],
        bucket=bucket,
        fsx_id=fsx["FileSystemId"],
        cluster_name=name,
        cluster_arn=arn,
        stack_name=stack_name,
        outputs=outputs,
        resolver=resolver,
    )


def _outputs_only_template(outputs: dict[str, str]) -> str:
    return json.dumps(
        {
            "Resources": {
                "Marker": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {"Name": "hpctl-test-marker", "Type": "String", "Value": "hpctl-test"},
                }
            },
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


@dataclass
class Cli:
    """Runs hpctl in-process against moto, recording what it would exec."""

    session: boto3.Session
    execs: list[list[str]]
    aws: Aws

    def __call__(self, *args: str, runtime: Runtime | None = None, stdin: str | None = None) -> Any:
        rt = runtime or Runtime(
            connect=lambda region, profile: self.aws,
            exec_argv=self.execs.append,
            which=_on_path,
            sleep=_no_sleep,
        )
        return CliRunner().invoke(app, list(args), obj=rt, input=stdin, catch_exceptions=False)


def _on_path(tool: str) -> str:
    return f"/usr/local/bin/{tool}"


def _no_sleep(seconds: float) -> None:
    return None

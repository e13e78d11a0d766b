"""A HyperPod cluster in moto, created from the properties infra/ synthesizes.

The stack's template is synthesized once per session; each test gets a fresh moto
account with the network, role, bucket and FSx the cluster needs, the cluster made
by CreateCluster from the template's AWS::SageMaker::Cluster properties, and a
CloudFormation stack carrying the template's outputs (resolved to those values).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hpctl_cfn import Physical, Resolver, create_cluster_kwargs
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends
from typer.testing import CliRunner

from hpctl.aws import Aws
from hpctl.main import app
from hpctl.runtime import Runtime
from infra.build import STACK_NAME_DEFAULT, build_app

REGION = "us-west-2"
ZONE = "us-west-2b"  # trn1.32xlarge is offered here (moto's offering data)
ACCOUNT = "123456789012"


@pytest.fixture(scope="session")
def stack_name() -> str:
    return STACK_NAME_DEFAULT


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack exactly as `cdk synth` builds it from cdk.json (once per session: ~5-10 s)."""
    assembly = build_app(outdir=str(tmp_path_factory.mktemp("cdk.out"))).synth()
    return dict(assembly.get_stack_by_name(STACK_NAME_DEFAULT).template)


@pytest.fixture(scope="module", autouse=True)
def isolated_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials for moto; nothing from the developer's ~/.aws or network leaks in."""
    empty = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "HPCTL_STACK"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("COLUMNS", "200")
        yield


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


@pytest.fixture(scope="module")
def world(template: dict[str, Any], stack_name: str, isolated_aws: None) -> Iterator[World]:
    """One moto account per test module (building it takes about a second)."""
    with mock_aws():
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

        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
        }
        resolver = Resolver(template, {}, pseudo)
        resolver = Resolver(template, _physical(resolver, net, role, fsx), pseudo)
        bucket = str(resolver.resolve(template["Outputs"]["BucketName"]["Value"]))
        session.client("s3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        (cluster_lid,) = resolver.resource_ids("AWS::SageMaker::Cluster")
        properties = resolver.resolve(template["Resources"][cluster_lid]["Properties"])
        arn = session.client("sagemaker").create_cluster(**create_cluster_kwargs(properties))["ClusterArn"]
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
        yield World(
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


@pytest.fixture
def moto_cluster(world: World) -> Iterator[Any]:
    """moto's own cluster object, for tests that change its state; restored afterwards."""
    cluster = sagemaker_backends[ACCOUNT][REGION].clusters[world.cluster_name]
    saved = (cluster.status, cluster.failure_message, {i: n.status for i, n in cluster.nodes.items()})
    yield cluster
    cluster.status, cluster.failure_message = saved[0], saved[1]
    for instance_id, status in saved[2].items():
        cluster.nodes[instance_id].status = status


@pytest.fixture
def cli(world: World) -> Cli:
    return Cli(session=world.session, execs=[], aws=Aws(world.session))


@pytest.fixture
def make_cli() -> Callable[[Aws], Cli]:
    """A Cli over any Aws (e.g. one whose clients are wrapped in a Stubber)."""
    return lambda aws: Cli(session=aws.session, execs=[], aws=aws)

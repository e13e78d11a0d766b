"""The HyperPod (Slurm) cluster: lifecycle scripts and their generated
provisioning_parameters.json uploaded to the bucket, then the cluster whose nodes
run them. CreateCluster reads the scripts at once, so the cluster waits for the upload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import DefaultStackSynthesizer, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from infra.nag import S3_GRANT_ACTIONS, acknowledge, wildcard_actions, wildcard_resource
from infra.provisioning import InstanceGroup

ON_CREATE = "on_create.sh"
PROVISIONING_PARAMETERS = "provisioning_parameters.json"
# Never uploaded: caches and the lifecycle engineer's local tests.
LIFECYCLE_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", "tests", "tests/**", ".*"]


class HyperPodCluster(Construct):
    """`cluster` is the CfnCluster; `lifecycle_upload` the BucketDeployment it waits for."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        groups: Sequence[InstanceGroup],
        role: iam.IRole,
        bucket: s3.IBucket,
        lifecycle_prefix: str,
        lifecycle_dir: Path,
        project_bundle_dir: Path,
        provisioning_parameters: Mapping[str, Any],
        node_provisioning_mode: str | None,
        subnet: ec2.ISubnet,
        security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (lifecycle_dir / ON_CREATE).is_file():
            raise FileNotFoundError(
                f"{lifecycle_dir / ON_CREATE} not found: the lifecycle scripts are uploaded from there"
            )
        self.lifecycle_upload = s3deploy.BucketDeployment(
            self,
            "LifecycleScripts",
            destination_bucket=bucket,
            destination_key_prefix=lifecycle_prefix,
            sources=[
                s3deploy.Source.asset(str(lifecycle_dir), exclude=LIFECYCLE_EXCLUDES),
                # project/: the training package and job templates the workers install on FSx.
                s3deploy.Source.asset(str(project_bundle_dir)),
                # json.dumps, not Source.json_data, which drops the contract's null values.
                # String tokens stay quoted and are filled in at deploy time.
                s3deploy.Source.data(PROVISIONING_PARAMETERS, json.dumps(provisioning_parameters, indent=2)),
            ],
        )
        _acknowledge_deployment_handler(self.lifecycle_upload, bucket)
        source_uri = bucket.s3_url_for_object(lifecycle_prefix)
        self.cluster = sagemaker.CfnCluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            node_recovery="Automatic",
        node_provisioning_mode=node_provisioning_mode,
            vpc_config=sagemaker.CfnCluster.VpcConfigProperty(
                security_group_ids=[security_group.security_group_id], subnets=[subnet.subnet_id]
            ),
            instance_groups=[_instance_group(g, role=role, source_uri=source_uri) for g in groups],
        )
        # The role's inline policy too: nodes start the scripts as soon as they boot.
        self.cluster.node.add_dependency(self.lifecycle_upload, role)


def _instance_group(
    group: InstanceGroup, *, role: iam.IRole, source_uri: str
) -> sagemaker.CfnCluster.ClusterInstanceGroupProperty:
    return sagemaker.CfnCluster.ClusterInstanceGroupProperty(
        instance_group_name=group.name,
        instance_type=group.instance_type,
        instance_count=group.count,
        execution_role=role.role_arn,
        threads_per_core=group.threads_per_core,
        training_plan_arn=group.training_plan_arn,
        on_start_deep_health_checks=list(group.deep_health_checks) or None,
        life_cycle_config=sagemaker.CfnCluster.ClusterLifeCycleConfigProperty(
            source_s3_uri=source_uri, on_create=ON_CREATE
        ),
        instance_storage_configs=[
            sagemaker.CfnCluster.ClusterInstanceStorageConfigProperty(
                ebs_volume_config=sagemaker.CfnCluster.ClusterEbsVolumeConfigProperty(
                    volume_size_in_gb=group.volume_gib
                )
            )
        ],
    )


def _acknowledge_deployment_handler(deployment: s3deploy.BucketDeployment, bucket: s3.IBucket) -> None:
    """The copying Lambda is aws-cdk-lib's own: its runtime and policy come with the library."""
    handler = deployment.handler_role.node.scope
    assert handler is not None
    acknowledge(
        handler,
        "BucketDeployment's handler runtime is chosen by aws-cdk-lib and moves with its upgrades",
        "AwsSolutions-L1",
    )
    acknowledge(
        handler,
        "Lambda's basic execution policy only lets the handler write its own logs",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    )
    acknowledge(
        handler,
        "BucketDeployment copies the staged asset archive into the destination bucket; "
        "CDK scopes it to the asset bucket and the destination bucket",
        *wildcard_actions(*S3_GRANT_ACTIONS),
        wildcard_resource(handler, bucket.arn_for_objects("*")),
        wildcard_resource(handler, f"{_asset_bucket_arn(handler)}/*"),
    )


def _asset_bucket_arn(scope: IConstruct) -> str:
    """The bootstrap asset bucket the stack's synthesizer publishes to: its qualifier comes
    from `-c @aws-cdk/core:bootstrapQualifier` (or the synthesizer's own), so an account
    bootstrapped with `cdk bootstrap --qualifier` gets its own bucket named here."""
    stack = Stack.of(scope)
    qualifier = stack.synthesizer.bootstrap_qualifier or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    name = DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace("${Qualifier}", qualifier).replace(
        "${AWS::Region}", stack.region
    )
    return stack.format_arn(service="s3", region="", account="", resource=Fn.sub(name))

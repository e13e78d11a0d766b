"""The one stack: builds each construct from the config, wires them together
(placement, grants, FSx and secret into the lifecycle parameters) and owns the
outputs hpctl reads (keys fixed in docs/contracts.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Environment, Fn, Stack
from constructs import Construct

from infra.cluster import HyperPodCluster
from infra.config import CREATE_ONLY_SETTINGS, ClusterConfig
from infra.execution_role import ExecutionRole
from infra.guard import CreateOnlyGuard
from infra.hf_token import HfTokenSecret
from infra.nag import S3_GRANT_ACTIONS, acknowledge, wildcard_actions, wildcard_resource
from infra.network import ExistingNetwork, Network, create_after_rules
from infra.provisioning import CONTROLLER_GROUP, DEFAULT_USER, instance_groups, provisioning_parameters
from infra.ssm_session import RunAsSessionDocument
from infra.storage import DATA_PREFIX, LIFECYCLE_PREFIX, Storage
from infra.tagging import tag_stack


class HyperPodStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ClusterConfig,
        lifecycle_dir: Path,
        project_bundle_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=config.account, region=config.region),
            description=f"SageMaker HyperPod (Slurm) cluster {config.cluster_name} of "
            + ", ".join(f"{w.count} x {w.instance_type}" for w in config.workers),
            **kwargs,
        )
        self._zone = config.availability_zone
        tag_stack(self, cluster_name=config.cluster_name, user_tags=config.tags)
        guard = CreateOnlyGuard(
            self,
            "CreateOnlyGuard",
            settings={key: getattr(config, key) for key in CREATE_ONLY_SETTINGS},
            allow_replacement=config.allow_replacement,
        )

        network: Network | ExistingNetwork
        if config.existing_subnet_id:
            assert config.existing_vpc_id and config.existing_security_group_id  # config checks them together
            network = ExistingNetwork(
                self,
                "Network",
                vpc_id=config.existing_vpc_id,
                subnet_id=config.existing_subnet_id,
                security_group_id=config.existing_security_group_id,
                availability_zone=config.availability_zone,
            )
        else:
            network = Network(
                self,
                "Network",
                availability_zone=config.availability_zone,
                availability_zone_id=config.availability_zone_id,
                cidr=config.vpc_cidr,
            )
        storage = Storage(
            self,
            "Storage",
            bucket_prefix=config.bucket_prefix,
            existing_bucket_name=config.existing_bucket_name,
            vpc=network.vpc,
            subnet=network.private_subnet,
            security_group=network.security_group,
            fsx_storage_capacity_gib=config.fsx_storage_capacity_gib,
            fsx_throughput_per_unit=config.fsx_throughput_per_unit,
            existing_fsx=(
                (config.existing_fsx_id, config.existing_fsx_mount_name)
                if config.existing_fsx_id and config.existing_fsx_mount_name
                else None
            ),
        )
        hf_token = HfTokenSecret(self, "HfToken", cluster_name=config.cluster_name)
        session = RunAsSessionDocument(self, "RunAs", user=DEFAULT_USER)

        role = ExecutionRole(self, "ExecutionRole").role
        storage.bucket.grant_read(role, f"{LIFECYCLE_PREFIX}*")
        # Read and write, never delete: a node cannot remove a result or its earlier versions.
        storage.bucket.grant_read(role, f"{DATA_PREFIX}*")
        storage.bucket.grant_put(role, f"{DATA_PREFIX}*")
        hf_token.secret.grant_read(role)
        acknowledge(
            role,
            "Bucket grants are scoped to the lifecycle/ and data/ prefixes; the wildcards are object keys "
            "and CDK's grant action groups",
            *wildcard_actions(*S3_GRANT_ACTIONS),
            wildcard_resource(role, storage.bucket.arn_for_objects(f"{LIFECYCLE_PREFIX}*")),
            wildcard_resource(role, storage.bucket.arn_for_objects(f"{DATA_PREFIX}*")),
        )

        hyperpod = HyperPodCluster(
            self,
            "HyperPod",
            cluster_name=config.cluster_name,
            groups=instance_groups(config),
            role=role,
            bucket=storage.bucket,
            lifecycle_prefix=LIFECYCLE_PREFIX,
            lifecycle_dir=lifecycle_dir,
            project_bundle_dir=project_bundle_dir,
            provisioning_parameters=provisioning_parameters(
                config,
                fsx_dns_name=storage.dns_name,
                fsx_mount_name=storage.mount_name,
                hf_token_secret_arn=hf_token.secret.secret_arn,
            ),
            node_provisioning_mode=config.node_provisioning_mode,
            subnet=network.private_subnet,
            security_group=network.security_group,
        )
        # Nodes mount FSx from on_create.sh; HyperPod does not wait for it otherwise.
        created_fsx = [storage.file_system] if storage.file_system else []
        hyperpod.cluster.node.add_dependency(*created_fsx)
        create_after_rules(network.security_group, *created_fsx, hyperpod.cluster)

        # A create-only change fails at the guard before anything it would replace is touched.
        for replaceable in (network, storage, hyperpod):
            replaceable.node.add_dependency(guard.resource)

        cluster_arn = hyperpod.cluster.attr_cluster_arn
        cluster_id = Fn.select(1, Fn.split("/", cluster_arn))
        self._outputs(
            ClusterName=(config.cluster_name, "HyperPod cluster name"),
            ClusterArn=(cluster_arn, "HyperPod cluster ARN"),
            ControllerGroupName=(CONTROLLER_GROUP, "Slurm controller instance group"),
            BucketName=(storage.bucket.bucket_name, "Lifecycle scripts, datasets and exported checkpoints"),
            FsxFileSystemId=(storage.file_system_id, "FSx for Lustre file system"),
            FsxDnsName=(storage.dns_name, "FSx for Lustre DNS name"),
            FsxMountName=(storage.mount_name, "FSx for Lustre mount name"),
            SsmTargetPrefix=(
                Fn.join("", ["sagemaker-cluster:", cluster_id, f"_{CONTROLLER_GROUP}-"]),
                "aws ssm start-session --target <this><instance-id>",
            ),
            SsmRunAsDocumentName=(session.document_name, f"SSM session document: shell as {DEFAULT_USER}"),
            HfTokenSecretArn=(hf_token.secret.secret_arn, "Put the Hugging Face token here"),
        )

    def _outputs(self, **outputs: tuple[str, str]) -> None:
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)

    @property
    def availability_zones(self) -> list[str]:
        """The configured zone, so synth never looks zones up (it would need an account)."""
        return [self._zone]

"""Where data lives: the `sagemaker-...` bucket (lifecycle scripts, datasets,
checkpoints) and FSx for Lustre, linked to the bucket so what jobs write under
/fsx/s3 is exported to S3 and outlives the file system.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_s3 as s3
from constructs import Construct

LIFECYCLE_PREFIX = "lifecycle/"
# The data repository association: FSx path <-> bucket prefix (datasets, checkpoints).
FSX_LINKED_PATH = "/s3"
DATA_PREFIX = "data/"
# S3 changes (new, changed, deleted objects) show up on FSx; files written on FSx are
# exported when new or changed, but a file deleted on FSx (a cleanup to free Lustre
# space) stays in S3: the bucket is where results outlive the cluster.
IMPORT_EVENTS = ["NEW", "CHANGED", "DELETED"]
EXPORT_EVENTS = ["NEW", "CHANGED"]
# Overwritten objects stay recoverable this long, then stop costing storage.
NONCURRENT_VERSION_DAYS = 30
INCOMPLETE_UPLOAD_DAYS = 7
METADATA_MODE = "AUTOMATIC"


class Storage(Construct):
    """The data bucket (`bucket`), its access-log bucket, and FSx for Lustre (`file_system`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_prefix: str,
        existing_bucket_name: str | None,
        vpc: ec2.IVpc,
        subnet: ec2.ISubnet,
        security_group: ec2.ISecurityGroup,
        fsx_storage_capacity_gib: int,
        fsx_throughput_per_unit: int,
        existing_fsx: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs: s3.IBucket | None = None
        self.bucket: s3.IBucket
        if existing_bucket_name:
            # Adopted: its policies, versioning and lifecycle stay its owner's.
            self.bucket = s3.Bucket.from_bucket_name(self, "Bucket", existing_bucket_name)
        else:
            self.access_logs = _private_bucket(self, "AccessLogs")
            self.bucket = _private_bucket(
                self,
                "Bucket",
                bucket_name=unique_bucket_name(Stack.of(self), bucket_prefix),
                versioned=True,
                lifecycle_rules=[
                    s3.LifecycleRule(
                        noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                        abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                    )
                ],
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix="data-bucket/",
            )

        # What the nodes mount; `file_system` is None when the user's own FSx is adopted.
        self.file_system: fsx.LustreFileSystem | None = None
        if existing_fsx:
            stack = Stack.of(self)
            self.file_system_id, self.mount_name = existing_fsx
            self.dns_name = f"{self.file_system_id}.fsx.{stack.region}.{stack.url_suffix}"
        else:
            self.file_system = self._lustre(
                vpc=vpc,
                subnet=subnet,
                security_group=security_group,
                storage_capacity_gib=fsx_storage_capacity_gib,
                throughput_per_unit=fsx_throughput_per_unit,
            )
            self.file_system_id = self.file_system.file_system_id
            self.dns_name = self.file_system.dns_name
            self.mount_name = self.file_system.mount_name
        self.data_repository = fsx.CfnDataRepositoryAssociation(
            self,
            "BucketLink",
            file_system_id=self.file_system_id,
            file_system_path=FSX_LINKED_PATH,
            data_repository_path=self.bucket.s3_url_for_object(DATA_PREFIX),
            batch_import_meta_data_on_create=True,
            s3=fsx.CfnDataRepositoryAssociation.S3Property(
                auto_import_policy=fsx.CfnDataRepositoryAssociation.AutoImportPolicyProperty(
                    events=IMPORT_EVENTS
                ),
                auto_export_policy=fsx.CfnDataRepositoryAssociation.AutoExportPolicyProperty(
                    events=EXPORT_EVENTS
                ),
            ),
        )

    def _lustre(
        self,
        *,
        vpc: ec2.IVpc,
        subnet: ec2.ISubnet,
        security_group: ec2.ISecurityGroup,
        storage_capacity_gib: int,
        throughput_per_unit: int,
    ) -> fsx.LustreFileSystem:
        file_system = fsx.LustreFileSystem(
            self,
            "Lustre",
            vpc=vpc,
            vpc_subnet=subnet,
            security_group=security_group,
            storage_capacity_gib=storage_capacity_gib,
            file_system_type_version=fsx.FileSystemTypeVersion.V_2_15,
            lustre_configuration=fsx.LustreConfiguration(
                deployment_type=fsx.LustreDeploymentType.PERSISTENT_2,
                per_unit_storage_throughput=throughput_per_unit,
                data_compression_type=fsx.LustreDataCompressionType.LZ4,
            ),
            # Kept when the stack is deleted or a create-only change replaces it (exports may
            # be pending, the venv and compile cache live here); dropped with a failed first
            # create, which has nothing to keep. README "What cdk destroy keeps" says how to delete it.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        # Metadata IOPS scale with capacity (PERSISTENT_2 on Lustre 2.15 only): a venv and
        # compile cache opened by 16-64 nodes at once is metadata-bound. aws-cdk-lib's L2
        # does not expose it yet; the CloudFormation property does.
        cfn_file_system = file_system.node.default_child
        assert isinstance(cfn_file_system, fsx.CfnFileSystem)
        cfn_file_system.add_property_override(
            "LustreConfiguration.MetadataConfiguration", {"Mode": METADATA_MODE}
        )
        return file_system


def unique_bucket_name(stack: Stack, prefix: str) -> str:
    """`<prefix>-<region>-<last 12 hex digits of the stack id>`. The bucket is retained, so a
    name fixed by account and region would make every retry after a failed create (and a
    second stack) fail with "already exists"; the stack id is new on every create."""
    stack_uuid = Fn.select(2, Fn.split("/", stack.stack_id))
    return Fn.join("-", [prefix, stack.region, Fn.select(4, Fn.split("-", stack_uuid))])


def _private_bucket(scope: Construct, construct_id: str, **props: Any) -> s3.Bucket:
    """A bucket nobody outside the account reaches, over TLS only, encrypted; kept on
    stack deletion because datasets and exported checkpoints outlive the cluster."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        encryption=s3.BucketEncryption.S3_MANAGED,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        **props,
    )

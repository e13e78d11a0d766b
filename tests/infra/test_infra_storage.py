"""The bucket and FSx for Lustre."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template
from infra_template import only, resources

from infra.config import ClusterConfig
from infra.storage import DATA_PREFIX, FSX_LINKED_PATH


def _data_bucket(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (item,) = [
        (lid, r)
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket" and "BucketName" in r["Properties"]
    ]
    return item


def test_the_bucket_name_starts_with_sagemaker(template: dict[str, Any]) -> None:
    _, bucket = _data_bucket(template)

    first, *_ = bucket["Properties"]["BucketName"]["Fn::Join"][1]
    assert first.startswith(f"{ClusterConfig().bucket_prefix}-")
    assert first.startswith("sagemaker-")


def test_every_bucket_blocks_public_access_and_is_encrypted(stack: Template) -> None:
    stack.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
        },
    )


def test_the_data_bucket_is_versioned_and_logs_access(template: dict[str, Any]) -> None:
    _, bucket = _data_bucket(template)

    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "DestinationBucketName" in bucket["Properties"]["LoggingConfiguration"]


def test_the_data_bucket_outlives_the_stack(template: dict[str, Any]) -> None:
    _, bucket = _data_bucket(template)

    assert bucket["DeletionPolicy"] == "Retain"


def test_the_data_bucket_refuses_requests_without_tls(stack: Template, template: dict[str, Any]) -> None:
    lid, _ = _data_bucket(template)
    stack.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": lid},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Principal": {"AWS": "*"},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_fsx_is_persistent_2_lustre_with_lz4(stack: Template) -> None:
    config = ClusterConfig()
    stack.has_resource_properties(
        "AWS::FSx::FileSystem",
        {
            "FileSystemType": "LUSTRE",
            "StorageCapacity": config.fsx_storage_capacity_gib,
            "LustreConfiguration": Match.object_like(
                {
                    "DeploymentType": "PERSISTENT_2",
                    "DataCompressionType": "LZ4",
                    "PerUnitStorageThroughput": config.fsx_throughput_per_unit,
                }
            ),
        },
    )


def test_fsx_links_its_s3_directory_to_the_data_prefix_of_the_bucket(template: dict[str, Any]) -> None:
    fsx_lid, _ = only(template, "AWS::FSx::FileSystem")
    bucket_lid, _ = _data_bucket(template)
    _, link = only(template, "AWS::FSx::DataRepositoryAssociation")

    assert link["Properties"]["FileSystemId"] == {"Ref": fsx_lid}
    assert link["Properties"]["FileSystemPath"] == FSX_LINKED_PATH
    assert link["Properties"]["DataRepositoryPath"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket_lid}, f"/{DATA_PREFIX}"]]
    }


def test_new_and_changed_files_are_exported_but_a_deletion_on_fsx_keeps_the_s3_copy(
    template: dict[str, Any],
) -> None:
    _, link = only(template, "AWS::FSx::DataRepositoryAssociation")

    assert link["Properties"]["S3"] == {
        "AutoImportPolicy": {"Events": ["NEW", "CHANGED", "DELETED"]},
        "AutoExportPolicy": {"Events": ["NEW", "CHANGED"]},
    }


def test_fsx_is_kept_when_the_stack_is_deleted_or_fsx_replaced(template: dict[str, Any]) -> None:
    """CloudFormation has no Snapshot policy for FSx; RetainExceptOnCreate still drops the
    file system of a failed first create, which holds nothing yet."""
    _, fs = only(template, "AWS::FSx::FileSystem")

    assert fs["DeletionPolicy"] == "RetainExceptOnCreate"
    assert fs["UpdateReplacePolicy"] == "Retain"


def test_fsx_scales_metadata_iops_with_its_capacity(stack: Template) -> None:
    stack.has_resource_properties(
        "AWS::FSx::FileSystem",
        {
            "FileSystemTypeVersion": "2.15",
            "LustreConfiguration": Match.object_like({"MetadataConfiguration": {"Mode": "AUTOMATIC"}}),
        },
    )


def test_noncurrent_versions_expire_and_stale_uploads_are_aborted(template: dict[str, Any]) -> None:
    _, bucket = _data_bucket(template)

    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"] == [
        {
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "Status": "Enabled",
        }
    ]


def test_the_node_role_cannot_delete_objects_or_versions(template: dict[str, Any]) -> None:
    (policy,) = [
        p for lid, p in resources(template, "AWS::IAM::Policy").items() if lid.startswith("ExecutionRole")
    ]
    actions = [
        action
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]

    assert "s3:PutObject" in actions
    assert not [a for a in actions if a.startswith("s3:Delete") or a in ("s3:*", "s3:Delete*")]

"""`hpctl upload`: datasets land under s3://<BucketName>/data/datasets/, which FSx shows as /fsx/s3/datasets."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from hpctl_world import Cli, World

from hpctl import upload
from hpctl.aws import Aws
from hpctl.runtime import Runtime

FSX_MOUNT_POINT = "/fsx"  # provisioning_parameters.json's fsx_mount_point (docs/contracts.md)


def _keys(world: World, prefix: str) -> dict[str, int]:
    listed = (
        world.session.client("s3").list_objects_v2(Bucket=world.bucket, Prefix=prefix).get("Contents", [])
    )
    return {o["Key"]: o["Size"] for o in listed}


def test_a_directory_keeps_its_layout_under_datasets(cli: Cli, world: World, tmp_path: Path) -> None:
    data = tmp_path / "dolly"
    (data / "split").mkdir(parents=True)
    (data / "train.jsonl").write_text('{"instruction": "hi"}\n' * 100)
    (data / "split" / "eval.jsonl").write_text('{"instruction": "bye"}\n')
    result = cli("upload", str(data))
    assert result.exit_code == 0, result.output
    assert _keys(world, "data/datasets/dolly/") == {
        "data/datasets/dolly/train.jsonl": 2200,
        "data/datasets/dolly/split/eval.jsonl": 23,
    }
    assert result.output.splitlines()[-1] == (
        f"uploaded 2 file(s), 2,223 bytes, to s3://{world.bucket}/data/datasets/dolly "
        "-> /fsx/s3/datasets/dolly on the cluster"
    )


def test_a_file_can_be_renamed_with_name(cli: Cli, world: World, tmp_path: Path) -> None:
    source = tmp_path / "local.jsonl"
    source.write_text("{}\n")
    result = cli("upload", str(source), "--name", "tiny.jsonl")
    assert result.exit_code == 0, result.output
    assert _keys(world, "data/datasets/tiny.jsonl") == {"data/datasets/tiny.jsonl": 3}
    assert result.output.splitlines()[-1].endswith("-> /fsx/s3/datasets/tiny.jsonl on the cluster")


def test_the_stacks_data_repository_association_links_the_prefix_hpctl_uploads_to(world: World) -> None:
    (link,) = world.resolver.resource_ids("AWS::FSx::DataRepositoryAssociation")
    properties = world.resolver.resolve(world.resolver.template["Resources"][link]["Properties"])
    assert properties["DataRepositoryPath"] == f"s3://{world.outputs['BucketName']}/{upload.LINKED_PREFIX}"
    assert properties["FileSystemId"] == world.outputs["FsxFileSystemId"]
    assert PurePosixPath(FSX_MOUNT_POINT) / properties["FileSystemPath"].lstrip("/") == upload.LINKED_FSX_PATH


def test_a_missing_path_is_named_before_any_aws_call(cli: Cli, tmp_path: Path) -> None:
    def no_aws(region: str | None, profile: str | None) -> Aws:
        raise AssertionError("hpctl upload reached AWS before checking the local path")

    result = cli("upload", str(tmp_path / "nope"), runtime=Runtime(connect=no_aws))
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {tmp_path / 'nope'} does not exist"]


def test_an_unknown_bucket_is_one_line(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text("{}\n")
    result = cli("upload", str(source), "--bucket", "sagemaker-nope")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "error: upload failed: NoSuchBucket: The specified bucket does not exist"
        " — check --bucket (or the stack's BucketName output) and --region"
    )

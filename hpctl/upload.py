"""Datasets to the stack's bucket, where FSx for Lustre's data repository association
imports them: s3://<bucket>/data/ is linked to /fsx/s3, so s3://<bucket>/data/datasets/<name>
appears on every node as /fsx/s3/datasets/<name>.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hpctl.aws import Aws, UsageError, aws_errors

# The stack's data repository association links this bucket prefix to this FSx directory
# (infra/storage.py; the test suite checks both against the synthesized template).
LINKED_PREFIX = "data/"
LINKED_FSX_PATH = PurePosixPath("/fsx/s3")
# Where under the link datasets go.
DATASETS_PREFIX = LINKED_PREFIX + "datasets/"


@dataclass(frozen=True)
class Upload:
    source: Path
    key: str
    size: int


@dataclass(frozen=True)
class UploadPlan:
    key: str  # data/datasets/<name>: the object, or the prefix of a directory's objects
    files: tuple[Upload, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fsx_path(self) -> PurePosixPath:
        return LINKED_FSX_PATH / self.key.removeprefix(LINKED_PREFIX)


def plan_upload(source: Path, name: str | None = None) -> UploadPlan:
    """One Upload per file; a directory keeps its layout under data/datasets/<name>/."""
    if not source.exists():
        raise UsageError(f"{source} does not exist")
    top = name or source.name
    if not top or "/" in top.strip("/"):
        raise UsageError(f"--name {top!r} must be one path segment (it becomes /fsx/s3/datasets/<name>)")
    key = DATASETS_PREFIX + top
    if source.is_file():
        return UploadPlan(key, (Upload(source, key, source.stat().st_size),))
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if not files:
        raise UsageError(f"{source} has no files to upload")
    return UploadPlan(
        key, tuple(Upload(p, f"{key}/{p.relative_to(source).as_posix()}", p.stat().st_size) for p in files)
    )


def upload(aws: Aws, bucket: str, plan: UploadPlan, on_bytes: Callable[[int], None]) -> None:
    """Upload in order; `on_bytes` is told of each chunk sent (for a progress bar)."""
    s3 = aws.client("s3")
    with aws_errors():
        for item in plan.files:
            s3.upload_file(str(item.source), bucket, item.key, Callback=on_bytes)

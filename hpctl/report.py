"""Run reports from the bucket to the laptop.

The chain's report job writes each run's report into its run directory,
/fsx/s3/runs/<run>/report/ on the cluster; the stack's FSx data repository
association exports /fsx/s3 to s3://<bucket>/data/, so the report lands at
s3://<bucket>/data/runs/<run>/report/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from hpctl import cluster as hp
from hpctl.aws import Aws, HpctlError, UsageError, aws_errors
from hpctl.runtime import Runtime
from hpctl.upload import LINKED_FSX_PATH, LINKED_PREFIX
from training.report import HTML_FILE, REPORT_DIR, RUNS_DIR

RUNS_PREFIX = f"{LINKED_PREFIX}{RUNS_DIR}/"
RUNS_FSX_PATH = LINKED_FSX_PATH / RUNS_DIR  # jobs/lib/common.sh: RUN_DIR=$FSX_ROOT/s3/runs/$RUN_NAME


def report_prefix(run: str) -> str:
    """data/runs/<run>/report/: the run's report as FSx exports it."""
    return f"{RUNS_PREFIX}{run}/{REPORT_DIR}/"


@dataclass(frozen=True)
class RemoteReport:
    run: str
    prefix: str  # data/runs/<run>/report/
    modified: datetime


def _report_of(s3: Any, bucket: str, run: str) -> RemoteReport | None:
    """The run's report when its page is in the bucket (the job writes the page last)."""
    prefix = report_prefix(run)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + HTML_FILE)
    for item in listed.get("Contents", []):
        if item["Key"] == prefix + HTML_FILE:
            return RemoteReport(run, prefix, item["LastModified"])
    return None


def _runs(s3: Any, bucket: str) -> list[str]:
    """The run names under data/runs/, one listing level deep (not every checkpoint file)."""
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=RUNS_PREFIX, Delimiter="/"):
        names += [PurePosixPath(p["Prefix"]).name for p in page.get("CommonPrefixes", [])]
    return names


def find_report(aws: Aws, bucket: str, run: str | None = None) -> RemoteReport:
    """The run's report, or the most recently written one of all runs when no run is named."""
    s3 = aws.client("s3")
    with aws_errors():
        if run is not None:
            found = _report_of(s3, bucket, run)
            if found is None:
                raise HpctlError(f"no report for run {run!r} at s3://{bucket}/{report_prefix(run)}: "
                                 "check --run (RUN_NAME of the chain), or wait for FSx to export it")
            return found
        reports = [r for r in (_report_of(s3, bucket, name) for name in _runs(s3, bucket)) if r is not None]
    if not reports:
        raise HpctlError(f"no report under s3://{bucket}/{report_prefix('*')}: run the chain's report step "
                         f"(jobs/submit), which writes {RUNS_FSX_PATH}/<run>/{REPORT_DIR}/")
    return max(reports, key=lambda r: r.modified)


def download(aws: Aws, bucket: str, report: RemoteReport, dest: Path) -> Path:
    """Every file of the report into dest/<run>/ (each written whole, then renamed); the HTML page's path."""
    s3 = aws.client("s3")
    target = dest / report.run
    target.mkdir(parents=True, exist_ok=True)
    with aws_errors():
        keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                                      Prefix=report.prefix)
                for item in page.get("Contents", [])]
        for key in sorted(keys, key=lambda k: k.endswith(HTML_FILE)):  # the page last
            relative = PurePosixPath(key).relative_to(report.prefix)
            if ".." in relative.parts:
                continue
            path = target.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part")
            s3.download_file(bucket, key, str(tmp))
            os.replace(tmp, path)
    return target / HTML_FILE


def report_command(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="RUN_NAME of the run (default: the latest report).")] = None,
    dest: Annotated[Path, typer.Option(help="Local folder; the report goes to <dest>/<run>/.")] = Path("reports"),
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in your browser.")] = False,
    stack: Annotated[
        str, typer.Option("--stack", "-s", envvar="HPCTL_STACK", help="Stack whose BucketName output is used.")
    ] = hp.DEFAULT_STACK,
    bucket: Annotated[str | None, typer.Option(help="Bucket (default: the stack's BucketName output).")] = None,
) -> None:
    """Fetch a run report (the latest by default) from the bucket.

    The report job writes it into the run, /fsx/s3/runs/<run>/report/, exported to
    s3://<bucket>/data/runs/<run>/report/: one self-contained report.html, report.md and its images.

    \b
    hpctl report --open                 # the latest report, opened in the browser
    hpctl report --run llama3-8b-lora   # that run's report, into ./reports/llama3-8b-lora/
    """
    _check_local_inputs(run, dest)
    rt = ctx.ensure_object(Runtime)
    aws = rt.aws()
    if bucket is None:
        bucket = hp.stack_outputs(aws, stack).bucket_name
        if not bucket:
            raise HpctlError(f"stack {stack} has no BucketName output: pass --bucket")
    found = find_report(aws, bucket, run)
    page = download(aws, bucket, found, dest)
    typer.echo(f"report of run {found.run} (written {found.modified:%Y-%m-%d %H:%M %Z}): {page}")
    if open_page:
        rt.open_url(page.resolve().as_uri())


def _check_local_inputs(run: str | None, dest: Path) -> None:
    """The command's own mistakes, found before any AWS call (exit 2, as every hpctl command)."""
    if run is not None and (not run or run in {".", ".."} or "/" in run):
        raise UsageError(f"--run {run!r} must be a run name (RUN_NAME), one path segment")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--dest {dest}: exists and is not a directory; name a folder")

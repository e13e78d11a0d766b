"""`hpctl report`: the latest run report from s3://<BucketName>/data/runs/<run>/report/ to the laptop."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from hpctl_world import Cli, World

from hpctl.report import RUNS_FSX_PATH, report_prefix
from hpctl.runtime import Runtime
from training.report import HTML_FILE, REPORT_DIR

ROOT = Path(__file__).resolve().parents[2]
PAGE = "<!DOCTYPE html><title>new-run</title>"


@pytest.fixture(scope="module")
def reports(world: World) -> World:
    """Two runs' reports, the newer written a second later (S3 times have one-second resolution), beside
    what else a run exports; the newest object of all is a run's checkpoint, not a report."""
    s3 = world.session.client("s3")
    s3.put_object(Bucket=world.bucket, Key=f"{report_prefix('old-run')}{HTML_FILE}", Body=b"<title>old-run</title>")
    time.sleep(1.1)
    for name, body in (("report.md", b"# new-run\n"), ("loss.png", b"\x89PNG..."), (HTML_FILE, PAGE.encode())):
        s3.put_object(Bucket=world.bucket, Key=f"{report_prefix('new-run')}{name}", Body=body)
    time.sleep(1.1)
    s3.put_object(Bucket=world.bucket, Key="data/runs/unreported-run/train/checkpoint-1/adapter.bin", Body=b"w")
    return world


def test_the_latest_report_comes_down_with_its_files(cli: Cli, reports: World, tmp_path: Path) -> None:
    result = cli("report", "--dest", str(tmp_path))
    assert result.exit_code == 0, result.output
    got = tmp_path / "new-run"
    assert sorted(p.name for p in got.iterdir()) == ["loss.png", "report.html", "report.md"]
    assert (got / HTML_FILE).read_text() == PAGE
    assert result.output.startswith("report of run new-run (written ")
    assert result.output.rstrip().endswith(str(got / HTML_FILE))


def test_a_named_run_is_fetched_even_when_older(cli: Cli, reports: World, tmp_path: Path) -> None:
    result = cli("report", "--run", "old-run", "--dest", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "old-run" / HTML_FILE).read_text() == "<title>old-run</title>"


def test_open_shows_the_page_in_the_browser(cli: Cli, reports: World, tmp_path: Path) -> None:
    opened: list[str] = []
    runtime = Runtime(connect=lambda region, profile: cli.aws, open_url=lambda url: opened.append(url) or True)
    result = cli("report", "--open", "--dest", str(tmp_path), runtime=runtime)
    assert result.exit_code == 0, result.output
    assert opened == [(tmp_path / "new-run" / HTML_FILE).resolve().as_uri()]


def test_an_unknown_run_is_one_error_line(cli: Cli, reports: World, tmp_path: Path) -> None:
    result = cli("report", "--run", "nope", "--dest", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: no report for run 'nope' at s3://{reports.bucket}/data/runs/nope/report/: check --run (RUN_NAME "
        "of the chain), or wait for FSx to export it"]
    assert not (tmp_path / "nope").exists()


def test_a_bucket_without_reports_says_which_step_writes_them(cli: Cli, world: World, tmp_path: Path) -> None:
    world.session.client("s3").create_bucket(Bucket="empty-bucket",
                                             CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    result = cli("report", "--bucket", "empty-bucket", "--dest", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: no report under s3://empty-bucket/data/runs/*/report/: run the chain's report step (jobs/submit), "
        "which writes /fsx/s3/runs/<run>/report/"]


def test_a_run_whose_report_is_not_exported_yet_is_one_error_line(cli: Cli, reports: World, tmp_path: Path) -> None:
    result = cli("report", "--run", "unreported-run", "--dest", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(
        f"error: no report for run 'unreported-run' at s3://{reports.bucket}/data/runs/unreported-run/report/")


def test_the_report_job_writes_where_hpctl_looks(tmp_path: Path) -> None:
    """jobs/lib/common.sh's RUN_DIR is a run under the FSx path linked to the prefix hpctl lists, and the
    report job writes into its report/ directory."""
    out = subprocess.run(["bash", "-c", 'source jobs/lib/common.sh && echo "$RUN_DIR"'], cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "FSX_ROOT": "/fsx", "RUN_NAME": "r1", "BACKEND": "cpu"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{RUNS_FSX_PATH}/r1"
    assert report_prefix("r1") == f"data/runs/r1/{REPORT_DIR}/"

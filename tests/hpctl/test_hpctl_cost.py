"""`hpctl cost`: estimates from hours or throughput, and actual cost from `sacct` output."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hpctl.main import app
from hpctl.runtime import Runtime

SACCT = """\
4101|lora-llama3|2|3180|COMPLETED
4101.batch|batch|1|3180|COMPLETED
4101.0|torchrun|2|3170|COMPLETED
4102|full-llama3|1|5400|CANCELLED by 1000
4103|lora-llama3|1|60|RUNNING
"""


def _cost(*args: str, stdin: str | None = None, region: str | None = "us-west-2") -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        app, ["cost", *args], obj=Runtime(region=region), input=stdin, catch_exceptions=False
    )
    return result.exit_code, result.output.splitlines()


def test_the_default_throughput_is_the_lora_reference_run() -> None:
    # the reference run: ~3,760 packed dolly-15k sequences per epoch, 3 epochs, one trn1.32xlarge, 53 min
    code, lines = _cost("--samples", "3760", "--epochs", "3")
    assert code == 0
    assert ": 53 min (" in lines[0]


def test_twice_the_instances_halve_the_time_at_the_same_cost() -> None:
    _, one = _cost("--samples", "3760", "--epochs", "3", "--samples-per-second", "2.08")
    _, two = _cost("--samples", "3760", "--epochs", "3", "--samples-per-second", "2.08", "--count", "2")
    assert ": 90 min (" in one[0] and ": 45 min (" in two[0]
    assert one[1].split(" for ")[0] == two[1].split(" for ")[0]  # "estimated $..." is the same


def test_hours_times_instances_times_the_table_price() -> None:
    code, lines = _cost("--hours", "2", "--count", "2")
    assert code == 0
    assert lines[0] == "estimated $86.00 for 2 x ml.trn1.32xlarge for 2.00 h"
    assert lines[1].startswith("price: ml.trn1.32xlarge at $21.50/h in us-west-2, 2026-01-21 (EC2 list price")


def test_your_own_rate_needs_no_region() -> None:
    code, lines = _cost("--hours", "1", "--price-per-hour", "30.5", region=None)
    assert code == 0
    assert lines == [
        "estimated $30.50 for 1 x ml.trn1.32xlarge for 1.00 h",
        "price: ml.trn1.32xlarge at $30.50/h (your rate)",
    ]


def test_the_readme_example_needs_no_region_when_the_table_has_one_price() -> None:
    code, lines = _cost("--hours", "2", "--count", "2", region=None)
    assert code == 0
    assert lines[0] == "estimated $86.00 for 2 x ml.trn1.32xlarge for 2.00 h"
    assert "in us-east-1, us-east-2, us-west-2 (no region given)" in lines[1]


def test_a_region_without_a_price_asks_for_your_rate() -> None:
    code, lines = _cost("--hours", "1", region="eu-west-1")
    assert code == 2
    assert lines[0].startswith(
        "error: no price for ml.trn1.32xlarge in eu-west-1: pass --price-per-hour (known: "
    )


def test_a_type_the_table_lacks_asks_for_your_rate_not_a_region() -> None:
    """No region prices it, so none is looked up (hpctl would otherwise connect to read the profile's)."""
    for region in (None, "us-west-2"):
        code, lines = _cost("--hours", "1", "--instance-type", "ml.p5.48xlarge", region=region)
        assert code == 2
        assert lines == ["error: no price for ml.p5.48xlarge in the table: pass --price-per-hour (known: "
                         "ml.c5.xlarge, ml.m5.xlarge, ml.trn1.32xlarge, ml.trn1n.32xlarge)"]


def test_sacct_counts_finished_jobs_by_node_hours_and_skips_steps(tmp_path: Path) -> None:
    report = tmp_path / "sacct.txt"
    report.write_text(SACCT)
    code, lines = _cost("--sacct", str(report))
    assert code == 0
    # 2 nodes x 53 min + 1 node x 90 min = 3.2667 node-hours at $21.50
    assert lines[-2] == "2 finished job(s), 3.27 node-hours: $70.23 (1 unfinished job(s) left out)"
    assert not any("4101.batch" in line or "torchrun" in line for line in lines)


def test_sacct_from_stdin() -> None:
    code, lines = _cost("--sacct", "-", stdin="7|x|4|3600|COMPLETED\n")
    assert code == 0
    assert lines[-2] == "1 finished job(s), 4.00 node-hours: $86.00"


def test_a_malformed_sacct_line_is_named() -> None:
    code, lines = _cost("--sacct", "-", stdin="7|x|4|3600|COMPLETED\n8|y|4|COMPLETED\n")
    assert code == 2
    assert lines == [
        "error: sacct line 2: want 5 fields (JobID,JobName,NNodes,ElapsedRaw,State), got 4: '8|y|4|COMPLETED'"
    ]


def test_hours_and_sacct_together_are_refused() -> None:
    code, lines = _cost("--hours", "1", "--sacct", "-", stdin="")
    assert code == 2
    assert lines == ["error: give exactly one of --hours, --samples or --sacct"]


def test_a_binary_sacct_file_is_one_error_line(tmp_path: Path) -> None:
    report = tmp_path / "sacct.bin"
    report.write_bytes(bytes(range(256)) * 4)
    code, lines = _cost("--sacct", str(report))
    assert code == 2
    assert lines == [f"error: --sacct {report}: not text; save the output of `sacct --parsable2 --noheader "
                     "--format=JobID,JobName,NNodes,ElapsedRaw,State`"]

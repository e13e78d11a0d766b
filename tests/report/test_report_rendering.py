"""The report page in a real headless browser (Debian's chromium): it renders, its images load, no errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_browser import Rendered, render
from report_run import write_run

from training.report import ReportArguments, main


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    run = write_run(tmp_path_factory.mktemp("run") / "llama3-run")
    page = main(ReportArguments(run_dir=str(run), region="us-west-2", use_sacct=False))
    return render(page)


def test_the_page_renders_with_its_sections(rendered: Rendered) -> None:
    assert rendered.title == "Fine-tuning report: llama3-run"
    for heading in ("Overview", "Loss", "Held-out evaluation", "Generations, side by side", "Throughput",
                    "Jobs, wall time and cost"):
        assert f"\n{heading}\n" in f"\n{rendered.text}\n"


def test_every_image_loads(rendered: Rendered) -> None:
    assert [i["alt"] for i in rendered.images] == [
        "training and eval loss against optimizer step", "held-out perplexity of the base and the merged model"]
    assert all(i["complete"] and i["naturalWidth"] > 0 and i["naturalHeight"] > 0 for i in rendered.images)


def test_the_browser_reports_no_console_errors(rendered: Rendered) -> None:
    assert rendered.console_errors == []


def test_the_checker_sees_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    """The checks above can fail: a page with a missing image and an error in the console is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><title>b</title><img src="missing.png" alt="x">'
                    '<script>console.error("boom")</script>')
    broken = render(page)
    assert broken.images[0]["naturalWidth"] == 0
    assert "boom" in broken.console_errors
    assert any("missing.png" in e for e in broken.console_errors)

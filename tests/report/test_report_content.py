"""training.report: what the page says about a finished run (its HTML and its Markdown twin)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from report_run import JOBS, write_run

from training.report import REPORT_DIR, ReportArguments, ReportInputError, main


def make_report(tmp_path: Path, **kwargs: object) -> tuple[str, str]:
    run = tmp_path / "llama3-run"
    if not run.exists():
        write_run(run, **{k: v for k, v in kwargs.items() if k in ("backend", "evaluation")})  # type: ignore[arg-type]
    args = {"region": "us-west-2", "use_sacct": False, **{k: v for k, v in kwargs.items() if k not in ("backend", "evaluation")}}
    page = main(ReportArguments(run_dir=str(run), **args))  # type: ignore[arg-type]
    return page.read_text(), (page.parent / "report.md").read_text()


@pytest.fixture(scope="module")
def cpu_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The CPU run's page and its Markdown, made once: the tests below only read them."""
    return make_report(tmp_path_factory.mktemp("cpu-report"))


def cells(html: str) -> str:
    """The page's table cells and paragraphs as plain `a | b` text, for readable assertions."""
    text = re.sub(r"</t[dh]><t[dh]>", " | ", html)
    return re.sub(r"<[^>]+>", "", text)


def test_the_report_is_one_self_contained_page(cpu_report: tuple[str, str]) -> None:
    html, _ = cpu_report
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in html


def test_it_shows_base_vs_merged_held_out_perplexity(cpu_report: tuple[str, str]) -> None:
    text = cells(cpu_report[0])
    assert "held-out perplexity, base -&gt; merged | 550.64 -&gt; 1.54" in text
    assert "base | 6.3111 | 550.64 | 9,876 | bfloat16" in text
    assert "merged | 0.4321 | 1.54 | 9,876 | bfloat16" in text
    assert "64 of 750 held-out examples" in text


def test_it_shows_train_and_eval_loss_and_the_parameters(cpu_report: tuple[str, str]) -> None:
    text = cells(cpu_report[0])
    assert "final train loss | 1.2345" in text
    assert "final eval loss (during training) | 1.4567" in text
    assert "trainable / total parameters | 6,815,744 / 8,037,076,992 (0.08%)" in text


def test_generations_stand_side_by_side_with_the_reference(cpu_report: tuple[str, str]) -> None:
    text = cells(cpu_report[0])
    assert ("What colour is the animal in the text?\n\nI saw a red fox in the garden today. | The fox is red. | "
            "garden garden | The fox is red.") in text
    assert "jumps &lt;owl&gt; | lazy" in text  # model output is escaped, not markup


def test_each_job_has_its_wall_time_and_the_run_its_cost(cpu_report: tuple[str, str]) -> None:
    text = cells(cpu_report[0])
    job, nodes, _ = JOBS["train"]
    assert f"train | {job} | {nodes} | 0:04:00 | COMPLETED | 0.133 | 2.87" in text
    assert "lora-train-7" not in text and "| 7 |" not in text  # an older run's job is not counted
    # 2,580 node-seconds at $21.50/h; the report's own job is still running and left out
    assert "Total: 8 finished job(s), 0.717 node-hours, $15.41; 1 unfinished job(s)" in text
    assert "report | 109 | 1 | (running)" in text
    assert "Price: ml.trn1.32xlarge at $21.50/h in us-west-2" in text


def test_your_own_rate_prices_the_jobs(tmp_path: Path) -> None:
    text = cells(make_report(tmp_path, price_per_hour=10.0)[0])
    assert "0.717 node-hours, $7.17" in text


def test_no_price_for_the_region_leaves_the_cost_out_and_says_why(tmp_path: Path) -> None:
    text = cells(make_report(tmp_path, region="eu-west-1")[0])
    assert "No cost: no price for ml.trn1.32xlarge in eu-west-1: pass --price-per-hour" in text
    assert "Total:" not in text


def test_neuron_throughput_stands_beside_the_seed_reference(tmp_path: Path) -> None:
    text = cells(make_report(tmp_path, backend="neuron")[0])
    assert "samples/s (whole job) | 7.40" in text
    assert "tokens/s (whole job) | 15,155" in text
    assert "samples/s per node | 3.70 (2 node(s))" in text
    assert "reference (lora, Llama-3-8B, one trn1.32xlarge) | 3.55 samples/s" in text
    assert "optimum-neuron 0.4.5 does not evaluate" in text


def test_the_seed_reference_is_not_claimed_for_a_cpu_run(cpu_report: tuple[str, str]) -> None:
    assert "reference (lora" not in cells(cpu_report[0])
    assert "does not apply" in cpu_report[0]


def test_the_markdown_says_the_same(cpu_report: tuple[str, str]) -> None:
    _, md = cpu_report
    assert "| merged | 0.4321 | 1.54 | 9,876 | bfloat16 | 6.0 s |" in md
    assert "| held-out perplexity, base -> merged | 550.64 -> 1.54 |" in md
    assert "![training and eval loss against optimizer step](loss.png)" in md
    assert "I saw a red fox" in md and "Total: 8 finished job(s), 0.717 node-hours, $15.41" in md


def test_the_markdown_images_sit_beside_it(tmp_path: Path) -> None:
    make_report(tmp_path)
    out = tmp_path / "llama3-run" / "report"
    for name in ("loss.png", "perplexity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_is_written_once_into_the_run_which_is_what_fsx_exports(tmp_path: Path) -> None:
    write_run(tmp_path / "llama3-run")
    before = set(tmp_path.rglob("*"))
    make_report(tmp_path)
    out = tmp_path / "llama3-run" / REPORT_DIR
    written = {p for p in tmp_path.rglob("*") if p not in before}
    assert [p for p in written if p != out and p.parent != out] == []
    assert {"loss.png", "perplexity.png", "report.html", "report.md"} <= {p.name for p in written}


def test_a_run_without_evaluation_says_which_step_to_run(tmp_path: Path) -> None:
    text = cells(make_report(tmp_path, evaluation=False)[0])
    assert "No evaluation.json in the run directory: run the evaluate step." in text


def test_a_run_without_training_is_an_error_naming_the_step(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match=re.escape("has no train/summary.json: run the train step first")):
        ReportArguments(run_dir=str(tmp_path))


def test_control_characters_in_model_output_do_not_reach_the_page(tmp_path: Path) -> None:
    run = write_run(tmp_path / "llama3-run")
    evaluation = json.loads((run / "evaluation.json").read_text())
    evaluation["generations"][0]["base"] = "jumps\x00\x06 doer\x1f"
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    html, md = make_report(tmp_path)
    assert "jumps\ufffd\ufffd doer\ufffd" in html and "jumps\ufffd\ufffd doer\ufffd" in md
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", html + md)


def test_with_slurm_accounting_the_jobs_come_from_sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster with slurmdbd (HyperPod, as lifecycle/ sets it up) answers sacct; here a stand-in answers
    with what sacct prints for these job ids (the local cluster has no accounting: see the chain test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked.txt"
    (bin_dir / "sacct").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$@" > {asked}\n'
        "echo '104|lora-train|2|5400|COMPLETED'\n"
        "echo '104.0|torchrun|2|5390|COMPLETED'\n"
        "echo '109|lora-report|1|3|RUNNING'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    write_run(tmp_path / "llama3-run")
    text = cells(make_report(tmp_path, use_sacct=True)[0])
    ids = ",".join(str(job) for job, _, _ in JOBS.values()) + ",109"
    assert asked.read_text().split() == ["-X", "--parsable2", "--noheader",
                                         "--format=JobID,JobName,NNodes,ElapsedRaw,State", "-j", ids]
    assert "from Slurm accounting (sacct)" in text
    assert "train | 104 | 2 | 1:30:00 | COMPLETED | 3.000 | 64.50" in text
    assert "Total: 1 finished job(s), 3.000 node-hours, $64.50; 1 unfinished job(s)" in text


def test_the_command_line_names_a_run_dir_that_is_not_there(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "training.report", "--run_dir", str(tmp_path / "nope")],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: run_dir {tmp_path / 'nope'} is not a directory"]

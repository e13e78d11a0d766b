"""The run report: did fine-tuning help, how did the run go, what did it cost, on one page.

Example (after the evaluate step, on the head node or anywhere the run directory is):
    python -m training.report --run_dir /fsx/s3/runs/llama3-8b-lora

Reads what the earlier steps left in the run directory (train/summary.json,
train/metrics.jsonl, evaluation.json, logs/lora-<step>-<job>.out) and writes
report/report.html (self-contained: styles and images inlined as data URIs) and
report/report.md (the same content; its images beside it). Each job's wall time
and node count come from Slurm accounting (sacct) when the cluster has it, else
from the jobs' own START/END log lines; the cost is their node-hours at the
price table's rate (training.pricing, shared with `hpctl cost --sacct`).
The run directory lies under /fsx/s3, which FSx exports to s3://<bucket>/data/,
so the report reaches the bucket as data/runs/<run>/report/, where `hpctl report`
fetches the latest one.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.fsio import write_text_atomic
from training.pricing import (
    REFERENCE_SAMPLES_PER_SECOND,
    SACCT_FORMAT,
    JobsCost,
    PricingError,
    SlurmJob,
    jobs_cost,
    parse_sacct,
    rate,
)

# A run's directory is <the FSx directory exported to S3>/RUNS_DIR/<RUN_NAME> (jobs/lib/common.sh's RUN_DIR;
# tests/jobs check they agree) and its report is REPORT_DIR inside it: the one copy, which FSx exports to
# s3://<bucket>/data/runs/<run>/report/ (hpctl/report.py reads both names from here).
RUNS_DIR = "runs"
REPORT_DIR = "report"
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
JOB_PREFIX = "lora-"  # every template's --job-name is lora-<step>
_LOG_NAME = re.compile(rf"^{JOB_PREFIX}([a-z]+)-(\d+)\.out$")


class ReportInputError(UserError):
    """A run directory the report cannot be made from."""


@dataclass
class ReportArguments:
    run_dir: str = field(metadata={"help": "The run directory (RUN_DIR): train/, evaluation.json, logs/."})
    instance_type: str = field(default="ml.trn1.32xlarge", metadata={"help": "Worker instance type, for the price."})
    region: str | None = field(default=None, metadata={
        "help": "Region of the price table (default: AWS_REGION, else AWS_DEFAULT_REGION)."})
    price_per_hour: float | None = field(default=None, metadata={
        "help": "Your USD per instance-hour instead of the table's."})
    use_sacct: bool = field(default=True, metadata={
        "help": "Ask Slurm accounting for the jobs; without it (or when it is off) the job logs are read."})

    def __post_init__(self) -> None:
        if not Path(self.run_dir).is_dir():
            raise ReportInputError(f"run_dir {self.run_dir} is not a directory")
        if not (Path(self.run_dir) / "train" / "summary.json").is_file():
            raise ReportInputError(f"run_dir {self.run_dir} has no train/summary.json: run the train step first")


# ---- the document: one model, rendered as HTML and as Markdown


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Image:
    name: str  # file name beside the Markdown
    alt: str
    png: bytes


Block = str | Table | Image


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1b1f24;line-height:1.45}
h1{margin-bottom:.2rem}.sub{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.8rem 0;width:100%;table-layout:fixed}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top;white-space:pre-wrap;
overflow-wrap:anywhere}
th{background:#f6f8fa}img{max-width:100%;height:auto;border:1px solid #d0d7de}
"""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _text(value: str) -> str:
    """Model output may hold any code point; control characters (not valid in HTML) show as U+FFFD."""
    return _CONTROL.sub("\ufffd", value)


def to_html(doc: Document) -> str:
    def esc(value: str) -> str:
        return html.escape(_text(value))

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width,initial-scale=1">',
             f"<title>{esc(doc.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{esc(doc.title)}</h1>", f'<p class="sub">{esc(doc.subtitle)}</p>']
    for section in doc.sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
                thead = f"<thead><tr>{head}</tr></thead>" if any(block.headers) else ""  # key/value tables
                body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows)
                parts.append(f"<table>{thead}<tbody>{body}</tbody></table>")
            elif isinstance(block, Image):
                data = base64.b64encode(block.png).decode("ascii")
                parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{esc(block.alt)}"></p>')
            else:
                parts.append(f"<p>{esc(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return _text(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", "", f"_{doc.subtitle}_", ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(map(_md_cell, block.headers)) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
            elif isinstance(block, Image):
                lines.append(f"![{block.alt}]({block.name})")
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


# ---- what the run left behind


@dataclass(frozen=True)
class JobRecords:
    jobs: list[SlurmJob]
    source: str  # "Slurm accounting (sacct)" or why the logs were read instead


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def latest_job_logs(log_dir: Path) -> dict[str, tuple[str, Path]]:
    """{step: (job id, log)}: the newest job of each step that wrote a log in `log_dir`."""
    found: dict[str, tuple[int, Path]] = {}
    for path in log_dir.glob(f"{JOB_PREFIX}*.out") if log_dir.is_dir() else []:
        m = _LOG_NAME.match(path.name)
        if m and int(m.group(2)) > found.get(m.group(1), (-1, path))[0]:
            found[m.group(1)] = (int(m.group(2)), path)
    return {step: (str(job), path) for step, (job, path) in sorted(found.items(), key=lambda kv: kv[1][0])}


def jobs_from_logs(logs: dict[str, tuple[str, Path]]) -> list[SlurmJob]:
    """Node count from each log's START banner, wall time from its END line (no END: not finished)."""
    jobs = []
    for step, (job_id, path) in logs.items():
        text = path.read_text(errors="replace")
        start = re.findall(rf"START {step}: job {job_id} on \S+ \((\d+) node", text)
        end = re.findall(rf"END {step}: job {job_id} succeeded in (\d+) s", text)
        jobs.append(SlurmJob(job_id, f"{JOB_PREFIX}{step}", int(start[-1]) if start else 1,
                             int(end[-1]) if end else 0, "COMPLETED" if end else "RUNNING"))
    return jobs


def job_records(run_dir: Path, use_sacct: bool) -> JobRecords:
    logs = latest_job_logs(run_dir / "logs")
    if not logs:
        return JobRecords([], "no job logs in the run directory")
    if not use_sacct:
        return JobRecords(jobs_from_logs(logs), "the jobs' START/END log lines (--no_use_sacct)")
    if shutil.which("sacct") is None:
        return JobRecords(jobs_from_logs(logs), "the jobs' START/END log lines (no sacct here)")
    ids = ",".join(job for job, _ in logs.values())
    out = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", f"--format={SACCT_FORMAT}", "-j", ids],
                         capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        why = (out.stderr.strip().splitlines() or ["no records"])[-1].removeprefix("sacct: ")
        return JobRecords(jobs_from_logs(logs), f"the jobs' START/END log lines (sacct: {why})")
    return JobRecords(parse_sacct(out.stdout.splitlines()), "Slurm accounting (sacct)")


# ---- the sections


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def loss_image(run_dir: Path) -> Image:
    """The train/eval loss curve training drew (drawn again from metrics.jsonl if it is missing)."""
    png = run_dir / "train" / "loss.png"
    if not png.is_file():
        from training.metrics import plot_loss

        (run_dir / REPORT_DIR).mkdir(parents=True, exist_ok=True)
        png = plot_loss(run_dir / "train" / "metrics.jsonl", run_dir / REPORT_DIR / "loss-drawn.png")
    return Image("loss.png", "training and eval loss against optimizer step", png.read_bytes())


def perplexity_image(evaluation: dict[str, Any]) -> Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = list(evaluation["models"])
    values = [evaluation["models"][r]["perplexity"] for r in roles]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    bars = ax.bar(roles, values, color=["tab:gray", "tab:green"][: len(roles)])
    ax.set_yscale("log")
    ax.set_ylabel("held-out perplexity (log)")
    ax.set_title("Base vs merged model on the held-out split")
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.2f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom")
    ax.margins(y=0.25)
    fig.tight_layout()
    return Image("perplexity.png", "held-out perplexity of the base and the merged model", _png(fig))


def overview(summary: dict[str, Any], evaluation: dict[str, Any] | None) -> Section:
    trainable, total = summary.get("trainable_params"), summary.get("total_params")
    share = f" ({100 * trainable / total:.2f}%)" if trainable and total else ""
    rows = [
        ("backend", f"{summary.get('backend')} ({summary.get('world_size')} process(es), tensor parallel "
                    f"{summary.get('tensor_parallel_size')}, data parallel {summary.get('data_parallel_size')})"),
        ("base model", str(summary.get("model_name_or_path"))),
        ("data", f"{summary.get('dataset_path')} ({summary.get('rows')} rows, {summary.get('data_format')})"),
        ("steps", f"{summary.get('steps')} of {summary.get('max_steps')}"),
        ("trainable / total parameters", f"{_num(trainable, '{:,}')} / {_num(total, '{:,}')}{share}"
         + (" (per tensor-parallel rank)" if summary.get("params_per_tensor_parallel_rank") else "")),
        ("final train loss", _num(summary.get("final_train_loss"))),
        ("final eval loss (during training)", _num(summary.get("final_eval_loss"))
         if summary.get("final_eval_loss") is not None else
         "n/a (not evaluated during training" + (": optimum-neuron 0.4.5 does not evaluate)"
                                                 if summary.get("backend") == "neuron" else ")")),
    ]
    if evaluation:
        base, merged = evaluation["models"]["base"], evaluation["models"]["merged"]
        rows.append(("held-out perplexity, base -> merged",
                     f"{base['perplexity']:,.2f} -> {merged['perplexity']:,.2f}"))
    return Section("Overview", [Table(("", ""), rows)])


def evaluation_section(evaluation: dict[str, Any] | None) -> list[Section]:
    if not evaluation:
        return [Section("Held-out evaluation", ["No evaluation.json in the run directory: run the evaluate step."])]
    held = evaluation["heldout"]
    rows = [(role, f"{m['loss']:.4f}", f"{m['perplexity']:,.2f}", f"{m['tokens']:,}", m["dtype"],
             f"{m['seconds']['total']:.1f} s") for role, m in evaluation["models"].items()]
    intro = (f"{held['examples_scored']} of {held['examples']} held-out examples (set aside before training, "
             f"seed {held['seed']}), cut at {held['max_seq_length']} tokens, scored on {evaluation['device']} "
             f"in {evaluation['seconds']:.1f} s.")
    gens = [(g["instruction"] + (f"\n\n{g['context']}" if g["context"] else ""), g["reference"], g["base"],
             g["merged"]) for g in evaluation["generations"]]
    return [
        Section("Held-out evaluation", [intro, Table(("model", "loss", "perplexity", "tokens", "dtype", "time"), rows),
                                        perplexity_image(evaluation)]),
        Section("Generations, side by side", [
            "Greedy answers to held-out instructions, in the training prompt format.",
            Table(("instruction", "reference", "base model", "merged model"), gens)]),
    ]


def throughput_section(summary: dict[str, Any], records: JobRecords) -> Section:
    sps, tps = summary.get("samples_per_second"), summary.get("tokens_per_second")
    train_nodes = next((j.nodes for j in records.jobs if j.name == f"{JOB_PREFIX}train"), None)
    rows = [("samples/s (whole job)", _num(sps, "{:.2f}")), ("tokens/s (whole job)", _num(tps, "{:,.0f}")),
            ("steps this session / wall time", f"{summary.get('session_steps')} in "
                                               f"{_num(summary.get('wall_time_s'), '{:.1f}')} s")]
    blocks: list[Block] = []
    if train_nodes and sps is not None:
        rows.append(("samples/s per node", f"{sps / train_nodes:.2f} ({train_nodes} node(s))"))
    if summary.get("backend") == "neuron":
        kind = "full" if summary.get("full_finetune") else "lora"
        rows.append((f"reference ({kind}, Llama-3-8B, one trn1.32xlarge)",
                     f"{REFERENCE_SAMPLES_PER_SECOND[kind]} samples/s"))
    else:
        blocks.append(f"Backend {summary.get('backend')}: the trn1.32xlarge reference "
                      f"({REFERENCE_SAMPLES_PER_SECOND['lora']} samples/s, LoRA) does not apply.")
    return Section("Throughput", [Table(("", ""), rows), *blocks])


def jobs_section(records: JobRecords, args: ReportArguments) -> Section:
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        cost: JobsCost | None = jobs_cost(records.jobs, rate(args.instance_type, region, args.price_per_hour))
        price_note = f"Price: {cost.rate.basis}." if cost else ""
    except PricingError as e:
        cost, price_note = None, f"No cost: {e}."
    rows = []
    for job in records.jobs:
        usd = f"{cost.job_usd(job):,.2f}" if cost and job.finished else ""
        rows.append((job.name.removeprefix(JOB_PREFIX), job.job_id, str(job.nodes),
                     _duration(job.elapsed_seconds) if job.finished else "(running)", job.state,
                     f"{job.node_hours:.3f}" if job.finished else "", usd))
    blocks: list[Block] = [f"Jobs of this run (the newest of each step), from {records.source}.",
                           Table(("step", "job", "nodes", "wall time", "state", "node-hours", "USD"), rows)]
    if cost:
        note = f"; {cost.unfinished} unfinished job(s) left out (their cost is not final)" if cost.unfinished else ""
        blocks.append(f"Total: {len(cost.finished)} finished job(s), {cost.node_hours:.3f} node-hours, "
                      f"${cost.usd:,.2f}{note}.")
    blocks.append(price_note)
    return Section("Jobs, wall time and cost", blocks)


def build(args: ReportArguments) -> Document:
    run_dir = Path(args.run_dir)
    summary = _read_json(run_dir / "train" / "summary.json")
    evaluation = _read_json(run_dir / "evaluation.json")
    records = job_records(run_dir, args.use_sacct)
    return Document(
        title=f"Fine-tuning report: {run_dir.name}",
        subtitle=f"{run_dir.resolve()}, written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        sections=[
            overview(summary, evaluation),
            Section("Loss", [loss_image(run_dir)]),
            *evaluation_section(evaluation),
            throughput_section(summary, records),
            jobs_section(records, args),
        ],
    )


def write(doc: Document, out_dir: Path) -> Path:
    """Images and Markdown first, the HTML last: whoever sees report.html sees a complete report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for image in doc.images():
        tmp = out_dir / f".{image.name}.tmp"
        tmp.write_bytes(image.png)
        tmp.replace(out_dir / image.name)
    write_text_atomic(out_dir / MARKDOWN_FILE, to_markdown(doc))
    return write_text_atomic(out_dir / HTML_FILE, to_html(doc))


def main(args: ReportArguments) -> Path:
    doc = build(args)
    path = write(doc, Path(args.run_dir) / REPORT_DIR)
    print(f"report: {path} (and {MARKDOWN_FILE} beside it)", flush=True)
    return path


if __name__ == "__main__":
    import sys

    from training.cli import run_entry_point

    sys.exit(run_entry_point((ReportArguments,), main,
                             prog="python -m training.report", description=__doc__))

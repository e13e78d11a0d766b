"""Benchmark: cold `cdk synth` of this app beside a bare one-construct CDK app's.

    .venv/bin/python bench/synth.py --rounds 5

The bare app (one Stack holding one SSM parameter, no cdk-nag, no assets, CDK's
built-in template validation off as in infra.build) is the floor
that every Python CDK app pays: the CDK CLI's start-up, Python's, jsii's Node runtime and
aws-cdk-lib's load. Both are synthesized by the same pinned CLI
(node_modules/.bin/cdk synth --quiet) into fresh output directories, in turn (A B A B ...),
so the ratio is taken pair by pair and a machine that speeds up or slows down between
rounds moves both. Prints a markdown table and writes it to bench/results/synth.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
RESULTS = ROOT / "bench" / "results" / "synth.md"
BARE_APP = """\
import aws_cdk as cdk
from aws_cdk import aws_ssm as ssm

# The same App option this project's build_app uses (CDK's own template validation off).
app = cdk.App(builtin_cloud_formation_validation=False)
stack = cdk.Stack(app, "Bare")
ssm.StringParameter(stack, "One", string_value="x")
app.synth()
"""


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system of the CLI and everything it waited for


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return env


def synth(app_dir: Path, scratch: Path) -> Run:
    """One cold `cdk synth` of the app in app_dir, into a new output directory."""
    out = Path(tempfile.mkdtemp(dir=scratch))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(out)],
        cwd=app_dir, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu)


def bare_app(scratch: Path) -> Path:
    directory = scratch / "bare"
    directory.mkdir()
    (directory / "app.py").write_text(BARE_APP)
    (directory / "cdk.json").write_text(f'{{"app": "{sys.executable} app.py", "notices": false}}\n')
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="A/B pairs after one unmeasured warm-up pair")
    args = parser.parse_args()
    if not CDK.exists():
        sys.exit("error: node_modules/.bin/cdk not found: run `make setup` first")
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        scratch = Path(tmp)
        bare = bare_app(scratch)
        synth(ROOT, scratch), synth(bare, scratch)  # warm the page cache, not the processes
        pairs = [(synth(ROOT, scratch), synth(bare, scratch)) for _ in range(args.rounds)]

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    ours, floor = [a for a, _ in pairs], [b for _, b in pairs]
    table = "\n".join(
        [
            f"Cold `cdk synth --quiet`, {args.rounds} rounds in turn, {os.cpu_count()} cores; medians.",
            "",
            "| app | wall s | cpu s (user+sys) |",
            "|---|---|---|",
            f"| this app (cdk-nag, assets, create-only guard) | {median([r.wall_s for r in ours])} | {median([r.cpu_s for r in ours])} |",
            f"| bare one-construct app | {median([r.wall_s for r in floor])} | {median([r.cpu_s for r in floor])} |",
            f"| ratio, pair by pair | {median([a.wall_s / b.wall_s for a, b in pairs])} "
            f"| {median([a.cpu_s / b.cpu_s for a, b in pairs])} |",
        ]
    )
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    main()

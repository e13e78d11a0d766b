#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local two-node Slurm cluster.
# Starts (or reuses) the cluster, submits the real job templates through
# jobs/submit with a tiny Llama and a small dolly-format data set, as the cluster's
# unprivileged user (as on HyperPod, never as root), waits for the chain, then
# prints where the results are and who owns them. `make down` stops the cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

: "${DEMO_FRESH:=1}"
: "${RUN_NAME:=demo}"
export RUN_NAME

say() { printf '\n== %s\n' "$*"; }

t0=$SECONDS
say "local Slurm cluster"
bash localslurm/up.sh

# shellcheck source=localslurm/pipeline.sh
source localslurm/pipeline.sh
# shellcheck source=localslurm/user.sh
source localslurm/user.sh
run_dir=${FSX_ROOT}/s3/runs/${RUN_NAME}
if [[ "$DEMO_FRESH" == 1 && -d "$run_dir" ]]; then
    # a finished run would be resumed, not trained again
    rm -rf "${run_dir:?}"
fi

say "pipeline: jobs/submit --wait as ${LOCALSLURM_USER} (${NODES} nodes for compile and train, ${MAX_STEPS} steps)"
# shellcheck disable=SC2016 # expanded by the user's shell
localslurm/as-user.sh bash -c 'set -o pipefail; mkdir -p "$1" && jobs/submit --wait | tee "$1/submit.txt"' \
    submit "$run_dir"

say "results"
"${VENV_DIR}/bin/python" - "$run_dir" <<'PY'
import json
import pwd
import re
import stat
import sys
from pathlib import Path

from hpctl.report import report_prefix
from training.report import HTML_FILE, REPORT_DIR

run = Path(sys.argv[1])
summary = json.loads((run / "train" / "summary.json").read_text())
losses = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines() if line.strip()]
losses = [r["loss"] for r in losses if "loss" in r]
print(f"loss curve:           {run / 'train' / 'loss.png'}")
print(f"loss:                 {losses[0]:.3f} (step 1) -> {losses[-1]:.3f} (step {summary['steps']})")
print(f"trainable parameters: {summary['trainable_params']:,} of {summary['total_params']:,} "
      f"({100 * summary['trainable_params'] / summary['total_params']:.2f}%)")
print(f"processes:            {summary['world_size']} ({summary['backend']}, "
      f"data parallel {summary['data_parallel_size']})")
steps, wall = summary.get("session_steps", summary["steps"]), summary.get("wall_time_s")
if wall:
    print(f"training speed:       {steps} steps in {wall:.1f} s ({wall / steps:.3f} s/step, "
          f"{summary.get('tokens_per_second', 0):.0f} tokens/s)")
merged = run / "merged"
owner = pwd.getpwuid(merged.stat().st_uid).pw_name
print(f"merged model:         {merged} (owner {owner}, mode {stat.filemode(merged.stat().st_mode)})")
print(f"sample generation:    {(run / 'generation.txt').read_text().strip()!r}")
print("wall time per pipeline step (job):")
for line in (run / "submit.txt").read_text().splitlines():
    m = re.match(r"^(\w+)\s+(\d+)\s+COMPLETED", line)
    if not m:
        continue
    step, job = m.groups()
    log = (run / "logs" / f"lora-{step}-{job}.out").read_text(errors="replace")  # progress bars may split bytes
    took = re.findall(rf"END {step}: job {job} succeeded in (\d+) s", log)
    print(f"  {step:<12} job {job:<6} {took[-1] if took else '?':>4} s")
evaluation = json.loads((run / "evaluation.json").read_text())
base, merged = (evaluation["models"][m]["perplexity"] for m in ("base", "merged"))
print(f"held-out perplexity:  base {base:,.2f} -> merged {merged:,.2f} "
      f"({evaluation['heldout']['examples_scored']} held-out examples, {evaluation['device']}, "
      f"{evaluation['seconds']:.1f} s)")
print(f"report:               {run / REPORT_DIR / HTML_FILE}")
print(f"on HyperPod:          s3://<BucketName>/{report_prefix(run.name)} (FSx exports the run; hpctl report)")
# a random tiny Llama is near uniform over its ~500 tokens; the trained one must be far better
if not merged * 10 < base:
    sys.exit(f"the merged model's held-out perplexity {merged:.2f} is not far below the base's {base:.2f}")
PY
say "done in $((SECONDS - t0)) s; logs in ${run_dir}/logs; stop the cluster with: make down"

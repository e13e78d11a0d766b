"""Helpers shared by the training tests (imported by name: tests/ has no packages, so shared names live in
uniquely named modules, never in conftest.py, which every test directory has)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    """A finished training run: its output directory, summary.json and what it printed."""

    output_dir: Path
    summary: dict[str, Any]
    stdout: str


# Settings under which the tiny model reliably learns the dolly patterns in 300 steps: LoRA on every linear
# layer including lm_head (a random model's near-uniform output needs it), a high lr, and a linear decay of it
# to 0. The decay is what makes the outcome independent of the CPU: with a constant 1e-2 the last steps keep
# jumping around the minimum, and 4 of 8 seeds ended with answers that never stop or mix tasks; decayed, 13 of
# 13 seeds (data split, LoRA init and dropout order all change with --seed, as rounding differences between
# CPUs change a trajectory) ended with every answer in shape, final eval loss 0.36-0.57 against 6.27 untrained.
LEARNABLE_FLAGS = [
    "--backend", "cpu", "--max_seq_length", "128", "--per_device_train_batch_size", "4",
    "--learning_rate", "1e-2", "--lr_scheduler_type", "linear", "--lora_alpha", "32", "--lora_dropout", "0",
    "--lora_target_modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head",
]


def module_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_module(module: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`python -m module args` from the repository root, output captured."""
    return subprocess.run(module_cmd(module, *args), cwd=REPO_ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def parse_finetune(argv: Sequence[str]) -> tuple[Any, ...]:
    from training.cli import parse
    from training.finetune import ARGUMENT_TYPES

    return parse(ARGUMENT_TYPES, list(argv))


ML_STACK = ("torch", "transformers", "peft", "datasets", "trl")
# `python -m MODULE ARGS` as runpy runs it, plus one last stdout line naming the ML_STACK packages the process
# had imported when it exited (atexit runs after the entry point's sys.exit)
_REPORT_IMPORTS = (
    "import atexit, runpy, sys\n"
    f"atexit.register(lambda: print('imported:', *[m for m in {ML_STACK!r} if m in sys.modules]))\n"
    "sys.argv[:] = sys.argv[1:]\n"  # `python -c CODE MODULE ARGS` gives ['-c', MODULE, ARGS]
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def run_module_reporting_imports(module: str, *args: str, env: dict[str, str] | None = None,
                                 timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`python -m module args` (as runpy runs it), and which packages of the ML stack it loaded before it exited:
    what proves that a command decided something (a refusal, nothing to do) before paying seconds for them."""
    result = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS, module, *args], cwd=REPO_ROOT,
                            env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    last = result.stdout.splitlines()[-1] if result.stdout.strip() else ""
    assert last.startswith("imported:"), result.stdout[-2000:] + result.stderr[-2000:]
    return result, last.split()[1:]

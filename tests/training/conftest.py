"""Session-wide fixtures: a tiny random Llama with its offline tokenizer, dolly data, one trained LoRA run.

Nothing here reaches a hub: the model and tokenizer are built by training.tiny,
and HF_HUB_OFFLINE is set for the whole session (the download tests point their
subprocesses at a local server instead).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from training_helpers import LEARNABLE_FLAGS, Run, parse_finetune
from xdist_once import shared_dir

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_llama

    return shared_dir(tmp_path_factory, "tiny-llama", make_tiny_llama)


@pytest.fixture(scope="session")
def dolly_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import write_dolly_jsonl

    return shared_dir(tmp_path_factory, "data", lambda d: write_dolly_jsonl(d / "dolly.jsonl", 300)) / "dolly.jsonl"


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def lora_run(tiny_model: Path, dolly_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One 300-step LoRA run on CPU, in-process, once per session (xdist workers share it); its outputs are checked by several tests. Eval runs every
    100 steps, on its own cadence (--eval_steps), not at the checkpoints (every 150)."""
    from training.finetune import main

    def train(out: Path) -> None:
        args = parse_finetune([
            "--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path), "--output_dir", str(out),
            *LEARNABLE_FLAGS, "--max_steps", "300", "--logging_steps", "30", "--save_steps", "150",
            "--eval_steps", "100",
        ])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            summary = main(*args)
        assert summary is not None
        # beside the run, for the other xdist workers: what main returned and printed
        (out.parent / "lora-run.returned.json").write_text(json.dumps(summary))
        (out.parent / "lora-run.stdout.txt").write_text(buf.getvalue())

    out = shared_dir(tmp_path_factory, "lora-run", train)
    return Run(out, json.loads((out.parent / "lora-run.returned.json").read_text()),
               (out.parent / "lora-run.stdout.txt").read_text())

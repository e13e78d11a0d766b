"""Data-parallel training under torchrun on CPU (gloo), laid out as two nodes on one machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import REPO_ROOT

pytestmark = pytest.mark.heavy  # two launchers and two training ranks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
def test_two_node_torchrun_trains_one_model_with_two_ranks(tiny_model: Path, dolly_path: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    port = _free_port()
    launchers = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
             "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
             "-m", "training.finetune", "--model_name_or_path", str(tiny_model), "--dataset_path",
             str(dolly_path), "--output_dir", str(out), "--backend", "cpu", "--max_seq_length", "64",
             "--per_device_train_batch_size", "2", "--max_steps", "6", "--save_steps", "3", "--logging_steps", "2"],
            cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=280)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["world_size"], summary["data_parallel_size"], summary["samples_per_step"]) == (2, 2, 4)
    assert summary["steps"] == 6
    assert (out / "adapter_model.safetensors").exists() and (out / "checkpoint-6" / "trainer_state.json").exists()
    # only rank 0 writes metrics: one record per logged step
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").open()) if "loss" in r]
    assert steps == [1, 2, 4, 6]
    assert "METRICS" in logs[0] and "METRICS" not in logs[1]

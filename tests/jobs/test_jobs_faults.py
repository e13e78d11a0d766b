"""Faults on the local cluster: a failed step stops the chain; a requeued training job resumes where it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jobs_helpers import QUICK_TRAINING, LocalCluster, logged_steps, parse_submitted, read_json
from waiting import wait_until

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def tiny_assets(local_cluster: LocalCluster) -> dict[str, str]:
    """A tiny model and data set made by the download step, shared by the tests here."""
    assets = {"MODEL_DIR": str(local_cluster.fsx / "models" / "tiny-llama"),
              "DATASET_PATH": str(local_cluster.datasets / "dolly-tiny.jsonl")}
    result = local_cluster.submit("download", run_name="assets", settings=assets)
    assert result.returncode == 0, result.stdout + result.stderr
    return assets


def test_a_failed_step_cancels_every_later_step(local_cluster: LocalCluster, tiny_assets: dict[str, str],
                                                tmp_path: Path) -> None:
    missing = {**tiny_assets, **QUICK_TRAINING, "DATASET_PATH": str(tmp_path / "absent.jsonl")}
    result = local_cluster.submit("train", "consolidate", "merge", "generate", run_name="missing-data",
                                  settings=missing)
    ids = parse_submitted(result.stdout)
    records = local_cluster.jobcomp()
    assert records[ids["train"]]["JobState"] == "FAILED"
    later = [ids[s] for s in ("consolidate", "merge", "generate")]
    assert [records[j]["JobState"] for j in later] == ["CANCELLED"] * 3
    assert local_cluster.queued(later) == []


def test_submit_names_the_failed_step_and_exits_non_zero(local_cluster: LocalCluster, tiny_assets: dict[str, str],
                                                         tmp_path: Path) -> None:
    missing = {**tiny_assets, **QUICK_TRAINING, "DATASET_PATH": str(tmp_path / "absent.jsonl")}
    result = local_cluster.submit("train", "consolidate", run_name="missing-data-2", settings=missing)
    assert result.returncode == 1
    assert "step train" in result.stderr and "ended FAILED" in result.stderr
    assert "(consolidate) will not run" in result.stderr
    log = (local_cluster.run_dir("missing-data-2") / "logs").glob("lora-train-*.out")
    assert f"DATASET_PATH {tmp_path / 'absent.jsonl'} does not exist" in next(log).read_text()


def test_a_requeued_training_job_resumes_from_its_last_checkpoint_and_loses_no_step(
        local_cluster: LocalCluster, tiny_assets: dict[str, str]) -> None:
    max_steps, save_steps, kill_after = 40, 5, 10
    submitted = local_cluster.submit("train", run_name="requeue", wait=False, settings={
        **tiny_assets, "MAX_STEPS": str(max_steps), "SAVE_STEPS": str(save_steps)})
    job = parse_submitted(submitted.stdout)["train"]
    out = local_cluster.run_dir("requeue") / "train"

    # interrupt it mid-run, once a checkpoint past the first is complete
    wait_until("checkpoint to requeue from", lambda: (out / f"checkpoint-{kill_after}" / "trainer_state.json").exists(),
               timeout_s=180)
    assert not (out / "summary.json").exists(), "training finished before it could be interrupted"
    local_cluster.run("scontrol", "requeue", str(job))

    wait_until("requeued job to finish",
               lambda: local_cluster.job(job).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"),
               timeout_s=300, interval_s=1)
    assert local_cluster.job(job)["JobState"] == "COMPLETED"
    assert local_cluster.job(job)["Restarts"] == "1"
    summary = read_json(out / "summary.json")
    assert summary["resumed_from_step"] >= kill_after
    assert summary["steps"] == max_steps
    assert logged_steps(out / "metrics.jsonl") == list(range(1, max_steps + 1))


def test_submit_wait_fails_with_slurms_reason_when_a_job_can_never_start(local_cluster: LocalCluster,
                                                                        tiny_assets: dict[str, str]) -> None:
    # the worker partition has two nodes: a 3-node training job would wait forever
    result = local_cluster.submit("train", "consolidate", run_name="too-many-nodes",
                                  settings={**tiny_assets, **QUICK_TRAINING, "NODES": "3"}, timeout=120)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert re.search(r"step train \(job \d+\) can never start: Slurm's reason is (PartitionConfig|PartitionNodeLimit)",
                     result.stderr), result.stderr
    ids = parse_submitted(result.stdout)
    assert local_cluster.queued(list(ids.values())) == []

"""The whole pipeline, submitted by jobs/submit through the real templates, on the local two-node Slurm cluster."""

from __future__ import annotations

import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from jobs_helpers import JOB_USER, QUICK_TRAINING, WORKER_PARTITION, LocalCluster, parse_submitted, read_json

pytestmark = pytest.mark.slurm

STEPS = ["env", "download", "compile", "train", "consolidate", "merge", "evaluate", "generate", "report"]


@dataclass(frozen=True)
class Chain:
    result: subprocess.CompletedProcess[str]
    ids: dict[str, int]
    run_dir: Path
    cluster: LocalCluster

    def log(self, step: str) -> str:
        return (self.run_dir / "logs" / f"lora-{step}-{self.ids[step]}.out").read_text()


@pytest.fixture(scope="module")
def chain(local_cluster: LocalCluster) -> Chain:
    run_dir = local_cluster.run_dir("chain")
    # its own model dir, so the download step really creates it
    result = local_cluster.submit(run_name="chain", settings={
        **QUICK_TRAINING, "MODEL_DIR": str(run_dir / "model"), "DATASET_PATH": str(run_dir / "data" / "dolly.jsonl")})
    return Chain(result, parse_submitted(result.stdout), run_dir, local_cluster)


def test_submit_prints_one_job_id_per_step_in_order(chain: Chain) -> None:
    assert list(chain.ids) == STEPS
    assert sorted(chain.ids.values()) == list(chain.ids.values())


def test_every_step_completed(chain: Chain) -> None:
    assert chain.result.returncode == 0, chain.result.stdout + chain.result.stderr
    records = chain.cluster.jobcomp()
    states = {step: records[job]["JobState"] for step, job in chain.ids.items()}
    assert states == dict.fromkeys(STEPS, "COMPLETED")


def test_every_step_ran_as_the_clusters_unprivileged_user(chain: Chain) -> None:
    records = chain.cluster.jobcomp()
    uid = pwd.getpwnam(JOB_USER).pw_uid
    assert {records[job]["UserId"] for job in chain.ids.values()} == {f"{JOB_USER}({uid})"}


def test_every_step_ran_in_the_worker_partition_not_the_default_one_with_the_login_node(chain: Chain) -> None:
    records = chain.cluster.jobcomp()
    assert {records[job]["Partition"] for job in chain.ids.values()} == {WORKER_PARTITION}
    assert not [job for job in chain.ids.values() if "login" in records[job]["NodeList"]]


def test_the_runs_outputs_lie_in_the_tree_exported_to_s3(chain: Chain) -> None:
    assert chain.run_dir.relative_to(chain.cluster.fsx).parts[:2] == ("s3", "runs")
    assert {"train", "adapter", "merged", "logs"} <= {p.name for p in chain.run_dir.iterdir()}


def test_the_merged_model_belongs_to_the_user(chain: Chain) -> None:
    merged = chain.run_dir / "merged"
    owners = {pwd.getpwuid(p.stat().st_uid).pw_name for p in [merged, *merged.rglob("*")]}
    assert owners == {JOB_USER}


def test_every_output_of_the_run_is_readable_by_the_users_group(chain: Chain) -> None:
    def group_can_read(path: Path) -> bool:
        need = stat.S_IRGRP | (stat.S_IXGRP if path.is_dir() else 0)
        return path.stat().st_mode & need == need

    unreadable = [str(p) for p in [chain.run_dir, *chain.run_dir.rglob("*")] if not group_can_read(p)]
    assert unreadable == []


def test_training_ran_one_process_on_each_of_the_two_nodes(chain: Chain) -> None:
    record = chain.cluster.jobcomp()[chain.ids["train"]]
    assert (record["NodeCnt"], record["NodeList"]) == ("2", "node[1-2]")
    summary = read_json(chain.run_dir / "train" / "summary.json")
    assert (summary["world_size"], summary["data_parallel_size"]) == (2, 2)


def test_each_node_started_torchrun_with_its_own_rank_and_the_first_node_as_master(chain: Chain) -> None:
    launches = [line for line in chain.log("train").splitlines() if " torchrun --nnodes" in line]
    master = f"--master_addr node1 --master_port {29500 + chain.ids['train'] % 1000}"
    assert len(launches) == 2
    assert all("--nnodes 2 --nproc_per_node 1" in line and master in line for line in launches)
    assert sorted(line.rsplit("--node_rank ", 1)[1] for line in launches) == ["0", "1"]


def test_training_wrote_the_loss_curve_and_the_adapter(chain: Chain) -> None:
    train = chain.run_dir / "train"
    assert (train / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_json(train / "summary.json")["steps"] == int(QUICK_TRAINING["MAX_STEPS"])
    assert (chain.run_dir / "adapter" / "adapter_config.json").is_file()


def test_the_download_step_creates_the_tiny_model_instead_and_says_so(chain: Chain) -> None:
    assert "MODEL_SOURCE=tiny (backend cpu): no Hub download; creating the tiny Llama instead" in chain.log("download")
    assert (chain.run_dir / "model" / "config.json").is_file()


def test_the_compile_step_is_skipped_without_neuron_devices_and_says_so(chain: Chain) -> None:
    assert "neuron_parallel_compile skipped: backend cpu" in chain.log("compile")


def test_the_merged_model_loads_and_generates(chain: Chain) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = chain.run_dir / "merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer("What is the capital of France?", return_tensors="pt").input_ids
    with torch.inference_mode():
        out = cast(torch.Tensor, model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                                pad_token_id=tokenizer.pad_token_id))
    assert out.shape == (1, ids.shape[1] + 4)
    assert "peft_config" not in model.config.to_dict()  # a plain model: the adapter is folded in


def test_the_generate_step_writes_its_answer_to_the_run_dir(chain: Chain) -> None:
    assert (chain.run_dir / "generation.txt").is_file()
    assert f"END generate: job {chain.ids['generate']} succeeded" in chain.log("generate")


def test_the_one_node_steps_run_a_thread_per_cpu_of_their_node(chain: Chain) -> None:
    # cons_tres gives a 1-task job one CPU unless it asks for more: merge and generate would run single-threaded
    node = chain.cluster.run("scontrol", "show", "node", "-o", "node1").stdout
    cpus = int(re.search(r"CPUTot=(\d+)", node).group(1))  # type: ignore[union-attr]
    for step in ("consolidate", "merge", "generate"):
        assert f"threads: OMP_NUM_THREADS={cpus} ({cpus} CPU(s)" in chain.log(step), step


def test_the_evaluate_step_scores_both_models_on_the_split_training_held_out(chain: Chain) -> None:
    heldout = read_json(chain.run_dir / "train" / "heldout.json")
    results = read_json(chain.run_dir / "evaluation.json")
    assert results["heldout"]["examples_scored"] == min(len(heldout["examples"]), 64) > 0
    assert set(results["models"]) == {"base", "merged"}
    assert results["models"]["base"]["tokens"] == results["models"]["merged"]["tokens"] > 0
    assert [g["instruction"] for g in results["generations"]] == [e["instruction"] for e in heldout["examples"][:4]]
    log = chain.log("evaluate")
    assert "evaluate: device cpu" in log
    assert f"END evaluate: job {chain.ids['evaluate']} succeeded" in log


def test_the_report_step_writes_the_report_once_into_the_run(chain: Chain) -> None:
    page = (chain.run_dir / "report" / "report.html").read_text()
    # the run lies under s3/, which FSx exports: no report is written anywhere else on the file system
    pages = [p.relative_to(chain.cluster.fsx).parts for p in chain.cluster.fsx.rglob("report.html")]
    assert [p for p in pages if p[:2] != ("s3", "runs") or p[3:] != ("report", "report.html")] == []
    # every earlier job of the chain is in the jobs table, with its wall time (no Slurm accounting here)
    for step in STEPS[:-1]:
        assert f"<td>{step}</td><td>{chain.ids[step]}</td>" in page
    assert "START/END log lines" in page
    assert (chain.run_dir / "report" / "report.md").is_file()

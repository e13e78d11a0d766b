"""The project's neuron backend run through optimum-neuron 0.4.5's own code (config, model loading,
NeuronSFTTrainer, its dataloader, optimizer steps, the checkpoint save), launched by the jobs'
launcher (jobs/lib/finetune.sh) with the recipe and the Neuron flags the jobs set, one simulated
rank at a time: torch_xla and neuronx_distributed are tests/neuron/sim, a 1-node job of 8 ranks
(TP 1 x DP 8, so the parallel layers are whole; the TP 8 layout is checked at config level below).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from neuron_sim import ROOT, Node, run_job_step, run_python

from training.checkpoints import SUPERSEDED_DIR

RANKS, STEPS = 8, 3
FLAGS = (f"--max_steps {STEPS} --save_steps 2 --max_seq_length 64 --gradient_accumulation_steps 1 "
         "--bf16 false --logging_steps 1 --gradient_checkpointing true")
ONCE_PER_JOB = ("summary.json", "metrics.jsonl", "loss.png")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    node = Node(tmp_path_factory.mktemp("trn1"))
    node.device.touch()
    return node


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from training.tiny import make_tiny_llama, write_dolly_jsonl

    root = tmp_path_factory.mktemp("inputs")
    return make_tiny_llama(root / "tiny-llama"), write_dolly_jsonl(root / "dolly.jsonl", 64)


def step(node: Node, tiny: tuple[Path, Path], rank: int, out: Path, extra: str = FLAGS, **env: str):
    model, data = tiny
    return run_job_step(node, rank, nodes=1, procs_per_node=RANKS, tp=1, model=model, data=data,
                        output_dir=out, extra_args=extra, **env)


@pytest.fixture(scope="module")
def job(node: Node, tiny: tuple[Path, Path]) -> dict[str, object]:
    """One training job: rank 5 runs first, then rank 0, into the same output directory."""
    out = node.root / "run"
    ranks, left = {}, {}
    for rank in (5, 0):
        ranks[rank] = result = step(node, tiny, rank, out)
        assert result.returncode == 0, f"rank {rank}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        left[rank] = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return {"out": out, "ranks": ranks, "files_after": left}


def test_a_rank_other_than_zero_trains_and_writes_no_job_results(job: dict) -> None:  # type: ignore[type-arg]
    rank5 = job["ranks"][5]
    assert "plan: " in rank5.stderr and "METRICS" not in rank5.stdout
    assert not [f for f in job["files_after"][5] if f in ONCE_PER_JOB]


def test_once_per_job_results_are_written_by_rank_zero_exactly_once(job: dict) -> None:  # type: ignore[type-arg]
    out = job["out"]
    for name in ONCE_PER_JOB:
        assert (out / name).is_file(), name
    logged = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").open()) if "loss" in r]
    assert logged == list(range(1, STEPS + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["backend"], summary["steps"], summary["world_size"], summary["data_parallel_size"]) == (
        "neuron", STEPS, RANKS, RANKS)
    assert job["ranks"][0].stdout.count("METRICS step=1 ") == 1


def test_the_flags_the_jobs_pass_reach_the_run(job: dict) -> None:  # type: ignore[type-arg]
    assert "torchrun --nnodes 1 --nproc_per_node 8" in job["ranks"][0].stdout  # the launcher's own log line
    # optimum-neuron found the compile cache in the NEURON_CC_FLAGS the jobs set and opened it there
    assert (job["out"].parent / "fsx" / "neuron-cache").is_dir()
    summary = json.loads((job["out"] / "summary.json").read_text())
    assert summary["args"]["gradient_checkpointing"] is True
    assert summary["args"]["num_train_epochs"] == 3  # the recipe's value, through the launcher


def test_the_plan_is_in_the_job_log_before_training(job: dict) -> None:  # type: ignore[type-arg]
    log = job["ranks"][0].stderr
    assert "plan: 64 examples ->" in log and f"{STEPS} optimizer steps in all" in log
    assert log.index("plan: ") < log.index("Running training")


def test_what_the_save_path_writes_is_what_consolidate_reads(job: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from safetensors.torch import load_file

    from training.weights.consolidate import ConsolidateArguments
    from training.weights.consolidate import main as consolidate

    out = job["out"]
    ckpt = out / f"checkpoint-{STEPS}"
    assert (ckpt / "adapter_default" / "adapter_shards" / "done").is_file()
    consolidate(ConsolidateArguments(checkpoint_dir=str(out), output_dir=str(tmp_path / "adapter")))
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert tensors and all(".lora_A." in k or ".lora_B." in k for k in tensors)
    assert any("q_proj" in k for k in tensors) and any("v_proj" in k for k in tensors)


def test_a_restart_never_writes_into_the_previous_runs_checkpoints(job: dict, node: Node,  # type: ignore[type-arg]
                                                                  tiny: tuple[Path, Path]) -> None:
    out = node.root / "restarted"
    shutil.copytree(job["out"], out)
    (out / "summary.json").unlink()  # the job was lost before it finished
    stale = out / "checkpoint-2" / "adapter_default" / "adapter_shards" / "model" / "stale-from-run-1"
    stale.write_text("a file of the interrupted run")
    result = step(node, tiny, 0, out)
    assert result.returncode == 0, result.stderr[-6000:]
    assert not stale.exists()
    assert (out / SUPERSEDED_DIR / f"checkpoint-{STEPS}" / "adapter_default" / "adapter_shards" / "done").is_file()
    assert json.loads((out / "summary.json").read_text())["steps"] == STEPS


CONFIG_AT_TP8 = """
import json, os
from training.cli import parse
from training.finetune import ARGUMENT_TYPES, _sft_kwargs
from training.backends import global_rank
from training.trainers import TrainerParts, neuron_settings
from optimum.neuron import NeuronSFTConfig
model, data, train = parse(ARGUMENT_TYPES, [os.environ["RECIPE"], "--model_name_or_path", os.environ["MODEL"],
    "--dataset_path", os.environ["DATA"], "--output_dir", os.environ["OUT"], "--gradient_checkpointing", "true"])
parts = TrainerParts(os.environ["MODEL"], None, None, None, None, [], _sft_kwargs(model, data, train, False), True)
config = NeuronSFTConfig(**neuron_settings(parts, model.tensor_parallel_size))
trn = config.trn_config
print(json.dumps({"tp": trn.tensor_parallel_size, "dp": trn.data_parallel_size,
    "sp": trn.sequence_parallel_enabled, "process_index": config.process_index, "global_rank": global_rank(),
    "skip_cache_push": config.skip_cache_push, "gc_kwargs": config.gradient_checkpointing_kwargs,
    "epochs": config.num_train_epochs, "accumulation": config.gradient_accumulation_steps}))
"""


def test_the_recipe_builds_optimum_neurons_config_for_tp8_over_64_ranks(node: Node, tiny: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    # the arguments' paths are checked as they are parsed: a real (tiny) model and data set
    result = run_python(node, 37, CONFIG_AT_TP8, WORLD_SIZE="64", LOCAL_RANK="5", OUT=str(tmp_path / "o"),
                        MODEL=str(tiny[0]), DATA=str(tiny[1]),
                        RECIPE=str(ROOT / "training/recipes/llama3-8b-lora.yaml"))
    assert result.returncode == 0, result.stderr[-6000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert (got["tp"], got["dp"], got["sp"]) == (8, 8, True)
    assert got["skip_cache_push"] is True and got["gc_kwargs"] == {"use_reentrant": True}
    assert (got["epochs"], got["accumulation"]) == (3, 8)
    # the platform fact behind rank-0-only work: optimum-neuron calls rank 37 process 0; the project does not
    assert (got["process_index"], got["global_rank"]) == (0, 37)


def test_the_compile_pass_runs_a_few_steps_and_leaves_nothing_to_resume(node: Node, tiny: tuple[Path, Path]) -> None:
    out = node.root / "compile"
    result = step(node, tiny, 0, out, extra=FLAGS.replace(f"--max_steps {STEPS}", "--max_steps 50"),
                  NEURON_EXTRACT_GRAPHS_ONLY="1", COMPILE_DIR=str(out))
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stdout.count("neuron_parallel_compile torchrun") == 1
    assert "compile pass done (10 steps)" in result.stderr  # COMPILE_PASS_STEPS, not the 50 asked for
    assert not list(out.glob("checkpoint-*")) and not (out / "summary.json").exists()

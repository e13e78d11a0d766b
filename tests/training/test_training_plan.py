"""The run's plan (examples, blocks, optimizer steps, expected time) is logged before training, and the
default recipe is a meaningful run on the cluster it is written for."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from training_helpers import REPO_ROOT, parse_finetune

from training.plan import job_nodes, make_plan

RECIPE = REPO_ROOT / "training" / "recipes" / "llama3-8b-lora.yaml"
# dolly-15k in 2048-token Llama 3 blocks: accumulation 16 at DP 8 gave "about a dozen" steps per epoch
DOLLY_BLOCKS = range(1500, 1901, 100)
TRN1_CORES, NODES = 32, 2


def test_steps_follow_the_trainers_count() -> None:
    plan = make_plan(examples=300, blocks=101, data_parallel_size=4, batch_size=2, accumulation=3, epochs=2,
                     max_steps=-1)
    # 101 blocks over 4 replicas: 26 each (padded), 13 batches, 5 optimizer steps (the last one partial)
    assert (plan.steps_per_epoch, plan.optimizer_steps, plan.samples_per_step) == (5, 10, 24)
    assert make_plan(examples=300, blocks=101, data_parallel_size=4, batch_size=2, accumulation=3, epochs=2,
                     max_steps=7).optimizer_steps == 7


def test_expected_time_is_at_the_seed_runs_speed_per_node() -> None:
    plan = make_plan(examples=10, blocks=710, data_parallel_size=1, batch_size=1, accumulation=1, epochs=1,
                     max_steps=-1)
    assert plan.expected_seconds(nodes=2) == pytest.approx(100.0)
    assert "expected 2 min at the seed run's 3.55 samples/s" in plan.describe(nodes=2)


@pytest.mark.parametrize("blocks", DOLLY_BLOCKS)
def test_the_default_recipe_trains_dolly_for_several_dozen_optimizer_steps_on_two_nodes(blocks: int) -> None:
    recipe = yaml.safe_load(RECIPE.read_text())
    dp = TRN1_CORES * NODES // recipe["tensor_parallel_size"]
    plan = make_plan(examples=15011, blocks=blocks, data_parallel_size=dp,
                     batch_size=recipe["per_device_train_batch_size"],
                     accumulation=recipe["gradient_accumulation_steps"],
                     epochs=recipe["num_train_epochs"], max_steps=-1)
    assert recipe["num_train_epochs"] == 3  # as the seed run
    assert 70 <= plan.optimizer_steps <= 100  # the official example's order (~70-90)
    assert plan.optimizer_steps > recipe["save_steps"]  # at least one checkpoint before the end


def test_the_log_shows_the_plan_before_training(tiny_model: Path, dolly_path: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from training.finetune import main

    caplog.set_level(logging.INFO, logger="training.finetune")
    main(*parse_finetune(["--model_name_or_path", str(tiny_model), "--dataset_path", str(dolly_path),
                          "--output_dir", str(tmp_path / "run"), "--backend", "cpu", "--max_seq_length", "64",
                          "--max_steps", "3", "--save_steps", "3", "--logging_steps", "1", "--eval_fraction", "0"]))
    plans = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: ")]
    assert len(plans) == 1
    assert "300 examples ->" in plans[0] and "3 optimizer steps in all" in plans[0]
    first_step_log = next(i for i, r in enumerate(caplog.records) if "done: 3 steps" in r.getMessage())
    assert caplog.records.index(next(r for r in caplog.records if r.getMessage() == plans[0])) < first_step_log


@pytest.mark.parametrize(("world", "per_node", "nodes"), [("64", "32", 2), ("128", "64", 2), ("8", "8", 1)])
def test_the_node_count_comes_from_torchruns_layout(world: str, per_node: str, nodes: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", per_node)  # trn2.48xlarge runs 64 processes per node
    assert job_nodes() == nodes

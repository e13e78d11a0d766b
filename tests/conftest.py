"""Fixtures shared across test directories: the CDK app synthesized once per session,
exactly as `cdk synth` builds it (cdk.json's context, cdk-nag's AwsSolutions checks,
the real lifecycle/ directory). The infra and hpctl tests both read it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from xdist_once import shared_dir

# One compute thread per process, set here so that it precedes every torch import in every xdist worker:
# the machine's few cores are shared (subprocesses inherit this), and torch's thread pool contending with
# the servers, subprocesses and other workers of the suite slowed runs tenfold.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def assembly_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.build import build_app

    return shared_dir(tmp_path_factory, "cdk.out", lambda outdir: build_app(outdir=str(outdir)).synth())


@pytest.fixture(scope="session")
def template(assembly_dir: Path) -> dict[str, Any]:
    from infra.build import STACK_NAME_DEFAULT

    data: dict[str, Any] = json.loads((assembly_dir / f"{STACK_NAME_DEFAULT}.template.json").read_text())
    return data


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files marked `heavy` run first. `make unit` hands whole files to its workers in collection order
    (--dist loadfile --no-loadscope-reorder); a long file handed out last leaves one core idle while the
    other finishes it, so the longest go first and the many short ones fill in behind them."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Hide the objects left at the end from the exiting interpreter's garbage collection, as every
    entry point does (training.cli._skip_final_collections): ~2 s per process that loaded torch and
    transformers, for each xdist worker and the main process alike."""
    import gc

    gc.freeze()

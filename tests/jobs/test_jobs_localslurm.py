"""localslurm/up.sh and down.sh on a cluster of their own (own state dir and ports): reuse and clean stop."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_helpers import LOCALSLURM, ROOT, TEST_PORT_BASE, cluster_env

pytestmark = pytest.mark.slurm

DAEMONS = ("munge/munged.pid", "run/slurmctld.pid", "run/slurmd-node1.pid", "run/slurmd-node2.pid")


def pids(state: Path) -> dict[str, int]:
    return {name: int((state / name).read_text()) for name in DAEMONS if (state / name).exists()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def scratch_cluster(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    state = tmp_path / "ls"
    env = cluster_env(state, TEST_PORT_BASE + 10)
    yield state, env
    subprocess.run(["bash", str(LOCALSLURM / "down.sh")], env=env, cwd=ROOT, capture_output=True, check=False)


def up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=env, cwd=ROOT, text=True, capture_output=True,
                          timeout=120, check=True)


def test_up_brings_two_idle_nodes(scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    _, env = scratch_cluster
    up(env)
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env, text=True, capture_output=True,
                           check=True).stdout.split("\n")
    assert [n for n in nodes if n] == ["node1 idle", "node2 idle"]


def test_up_reuses_a_running_cluster(scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    state, env = scratch_cluster
    up(env)
    first = pids(state)
    second = up(env)
    assert pids(state) == first
    assert second.stdout.count("running (pid") == len(DAEMONS)


def test_down_stops_every_daemon_up_started(scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    state, env = scratch_cluster
    up(env)
    started = pids(state)
    assert len(started) == len(DAEMONS)
    subprocess.run(["bash", str(LOCALSLURM / "down.sh")], env=env, cwd=ROOT, capture_output=True, check=True)
    assert [name for name, pid in started.items() if alive(pid)] == []

"""localslurm/up.sh and down.sh on a cluster of their own (own state dir and ports): reuse and clean stop."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_helpers import JOB_USER, LOCALSLURM, ROOT, TEST_PORT_BASE, cluster_env

pytestmark = pytest.mark.slurm

DAEMONS = ("munge/munged.pid", "run/slurmctld.pid", "run/slurmd-node1.pid", "run/slurmd-node2.pid",
           "run/slurmd-login1.pid")


def pids(state: Path) -> dict[str, int]:
    return {name: int((state / name).read_text()) for name in DAEMONS if (state / name).exists()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def scratch_cluster() -> Iterator[tuple[Path, dict[str, str]]]:
    # not pytest's tmp_path: its parents are private to root, and the job user must reach the shared root
    top = Path(tempfile.mkdtemp(prefix="localslurm-", dir="/tmp"))
    top.chmod(0o755)
    state = top / "ls"
    env = cluster_env(state, TEST_PORT_BASE + 10)
    try:
        yield state, env
    finally:
        subprocess.run(["bash", str(LOCALSLURM / "down.sh")], env=env, cwd=ROOT, capture_output=True, check=False)
        shutil.rmtree(top, ignore_errors=True)


def up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=env, cwd=ROOT, text=True, capture_output=True,
                          timeout=120, check=True)


def sinfo(env: dict[str, str], fmt: str) -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", fmt], env=env, text=True, capture_output=True, check=True).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def test_up_brings_two_idle_workers_and_a_login_node(scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    _, env = scratch_cluster
    up(env)
    assert sorted(set(sinfo(env, "%N %t"))) == ["login1 idle", "node1 idle", "node2 idle"]


def test_the_default_partition_holds_the_login_node_as_on_hyperpod(
        scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    _, env = scratch_cluster
    up(env)
    assert sinfo(env, "%N %P") == ["login1 dev*", "node1 dev*", "node1 local", "node2 dev*", "node2 local"]


def test_the_shared_root_belongs_to_root_and_its_tree_to_the_job_user(
        scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    state, env = scratch_cluster
    up(env)
    fsx = state / "fsx"
    assert (fsx.stat().st_uid, fsx.stat().st_mode & 0o7777) == (os.geteuid(), 0o755)
    uid = pwd.getpwnam(JOB_USER).pw_uid
    tree = {str(p.relative_to(fsx)): (p.stat().st_uid, p.stat().st_mode & 0o7777)
            for p in (fsx / "models", fsx / "s3" / "datasets", fsx / "s3" / "runs", fsx / "envs")}
    assert tree == dict.fromkeys(["models", "s3/datasets", "s3/runs", "envs"], (uid, 0o2755))


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


def test_a_second_cluster_on_ports_in_use_fails_at_once_naming_the_port_and_starts_nothing(
        scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    state, env = scratch_cluster
    up(env)
    ctld_log = state / "log" / "slurmctld.log"
    seen = ctld_log.read_text()
    other = Path(tempfile.mkdtemp(prefix="localslurm-", dir="/tmp"))
    try:
        began = time.monotonic()
        second = subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=cluster_env(other / "ls", TEST_PORT_BASE + 10),
                                cwd=ROOT, text=True, capture_output=True, timeout=120, check=False)
        took = time.monotonic() - began
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"error: port {TEST_PORT_BASE + 10} (slurmctld) is already in use, by another cluster or program: "
            "set LOCALSLURM_CTLD_PORT (and the other LOCALSLURM_*_PORT) to free ports, or stop what listens there"]
        assert took < 15
        assert pids(other / "ls") == {}  # no munged of its own left running
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert "auth" not in ctld_log.read_text()[len(seen):].lower()  # nothing signed with another key reached it


def test_up_with_other_ports_while_the_cluster_runs_refuses_and_changes_nothing(
        scratch_cluster: tuple[Path, dict[str, str]]) -> None:
    state, env = scratch_cluster
    up(env)
    conf = (state / "etc" / "slurm.conf").read_text()
    running = pids(state)
    moved = subprocess.run(["bash", str(LOCALSLURM / "up.sh")], env=cluster_env(state, TEST_PORT_BASE + 20), cwd=ROOT,
                           text=True, capture_output=True, timeout=120, check=False)
    assert moved.returncode == 2
    assert len(moved.stderr.splitlines()) == 1
    assert moved.stderr.startswith(f"error: the cluster in {state} is running with other settings")
    assert (state / "etc" / "slurm.conf").read_text() == conf
    assert pids(state) == running and all(alive(pid) for pid in running.values())

"""The controller prepares the jobs' tree on the root-owned FSx for the default user, once for the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_fakes import CONTROLLER_IP, LOGIN_IP, WORKER_IP, fresh_rules, recorder, run_node
from provision.shared_tree import EXPORTED_DIR, RUNS_DIR, USER_DIRS

from infra.storage import FSX_LINKED_PATH
from training import report

# Each run keeps its report in its own report/ directory: there is no separate reports tree.
TREE = ["models", "s3/datasets", "s3/runs", "envs"]


def test_the_exported_directory_is_the_one_the_data_repository_association_links_to_s3():
    assert f"/{EXPORTED_DIR}" == FSX_LINKED_PATH
    assert f"{EXPORTED_DIR}/runs" in USER_DIRS


def test_the_runs_directory_is_the_one_the_report_and_hpctl_name():
    assert RUNS_DIR == report.RUNS_DIR


def test_the_controller_hands_each_directory_of_the_tree_to_the_default_user(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, CONTROLLER_IP, runner)
    chowned = [c[-1] for c in runner.commands if c[:2] == ["chown", "ubuntu:ubuntu"]]
    assert [str(root / "fsx" / d) for d in TREE] == [p for p in chowned if p.startswith(f"{root}/fsx/") and
                                                     not p.startswith(f"{root}/fsx/ubuntu")]


def test_the_tree_is_setgid_and_group_readable(root: Path):
    run_node(root, CONTROLLER_IP, recorder(fresh_rules()))
    assert {d: (root / "fsx" / d).stat().st_mode & 0o7777 for d in TREE} == dict.fromkeys(TREE, 0o2755)


def test_the_file_systems_top_stays_root_owned_0755(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, CONTROLLER_IP, runner)
    fsx = root / "fsx"
    assert (fsx.stat().st_uid, fsx.stat().st_mode & 0o7777) == (0, 0o755)
    assert not [c for c in runner.commands if c[0] == "chown" and c[-1] in (str(fsx), f"{fsx}/s3")]


@pytest.mark.parametrize("ip", [WORKER_IP, LOGIN_IP], ids=["worker", "login"])
def test_other_nodes_leave_the_shared_tree_to_the_controller(root: Path, ip: str):
    run_node(root, ip, recorder(fresh_rules()))
    assert not (root / "fsx" / "models").exists()

"""Running the bootstrap twice leaves the same node: the second run only looks."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_fakes import (
    CONTROLLER_IP,
    LOGIN_IP,
    WORKER_IP,
    fresh_rules,
    mark_mounted,
    mutating,
    provisioned_rules,
    recorder,
    run_node,
    snapshot,
)


@pytest.mark.parametrize("ip", [CONTROLLER_IP, WORKER_IP, LOGIN_IP], ids=["controller", "worker", "login"])
def test_second_run_changes_no_file_and_issues_only_probes(root: Path, ip: str):
    run_node(root, ip, recorder(fresh_rules()))
    mark_mounted(root)
    before = snapshot(root)
    second = recorder(provisioned_rules())
    run_node(root, ip, second)
    assert snapshot(root) == before
    assert mutating(second.commands) == []


def test_second_worker_on_shared_fsx_reuses_the_venv_and_the_key(root: Path, tmp_path: Path):
    """Two workers share FSx: the one that comes second installs nothing."""
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    mark_mounted(root)
    key = (root / "fsx/ubuntu/.ssh/id_ed25519").read_bytes()
    second = recorder(provisioned_rules())
    run_node(root, "10.1.1.32", second)
    assert (root / "fsx/ubuntu/.ssh/id_ed25519").read_bytes() == key
    assert not [c for c in second.commands if "pip" in c[0] or c[1:3] == ["-m", "venv"]]


def test_changed_pins_reinstall_the_venv(root: Path):
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    mark_mounted(root)
    (root / "fsx/envs/neuron/.provisioned").write_text("digest of an older pin set\n")
    second = recorder(provisioned_rules())
    run_node(root, WORKER_IP, second)
    assert [c for c in second.commands if c[0].endswith("/bin/pip")]

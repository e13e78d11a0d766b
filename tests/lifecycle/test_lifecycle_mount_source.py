"""A node that already has FSx mounted: the kernel names the source by IP, and that is our file system."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_fakes import FSX_IP, LUSTRE, WORKER_IP, provisioned_rules, recorder, run_node
from provision.orchestrator import StepFailed


def mounted(root: Path, device: str, fstype: str = "lustre") -> None:
    with (root / "proc/mounts").open("a") as f:
        f.write(f"{device} /fsx {fstype} rw,noatime,flock,lazystatfs 0 0\n")


def test_the_fixture_shows_the_mount_as_a_real_node_does(root: Path):
    mounted(root, f"{FSX_IP}@tcp:/abcdefgh")
    assert f"{FSX_IP}@tcp:/abcdefgh /fsx lustre" in (root / "proc/mounts").read_text()
    assert LUSTRE.split("@")[0] not in (root / "proc/mounts").read_text()


def test_a_mount_shown_by_the_file_systems_ip_is_recognised_and_left_alone(root: Path):
    mounted(root, f"{FSX_IP}@tcp:/abcdefgh")
    runner = recorder(provisioned_rules())
    run_node(root, WORKER_IP, runner)
    assert not [c for c in runner.commands if c[0] in ("mount", "modprobe", "lctl")]


@pytest.mark.parametrize("device, fstype", [
    (f"{FSX_IP}@tcp:/zzzzzzzz", "lustre"),  # another file system at the same address
    ("10.9.9.9@tcp:/abcdefgh", "lustre"),  # an address the DNS name does not resolve to
    ("/dev/nvme1n1", "ext4"),
], ids=["other-mountname", "other-address", "local-disk"])
def test_something_else_mounted_on_the_mount_point_fails_naming_it(root: Path, device: str, fstype: str):
    mounted(root, device, fstype)
    with pytest.raises(StepFailed, match=f"mount_fsx.*already a mount point of {device}"):
        run_node(root, WORKER_IP, recorder(provisioned_rules()))

"""The controller's first run: Slurm accounting, slurmctld, and nothing Neuron."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lifecycle_fakes import CONTROLLER_IP, PARAMS, fresh_rules, recorder, run_node
from provision.orchestrator import StepFailed


@pytest.fixture
def controller(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, CONTROLLER_IP, runner)
    return root, runner


def test_accounting_conf_points_slurmctld_at_slurmdbd_on_the_controller(controller):
    root, _ = controller
    assert (root / "opt/slurm/etc/accounting.conf").read_text().splitlines()[1:] == [
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=10.1.0.10",
        "AccountingStoragePort=6819",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=30",
    ]


def test_slurmdbd_conf_is_private_to_slurm_and_holds_a_generated_password(controller):
    root, runner = controller
    conf = root / "opt/slurm/etc/slurmdbd.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert ["chown", "slurm:slurm", str(conf)] in runner.commands
    lines = dict(line.split("=", 1) for line in conf.read_text().splitlines() if "=" in line)
    assert lines["StorageType"] == "accounting_storage/mysql"
    assert lines["StorageLoc"] == "slurm_acct_db"
    assert len(lines["StoragePass"]) == 32


def test_database_and_user_are_created_with_the_password_on_stdin_only(controller):
    root, runner = controller
    password = next(
        line.split("=", 1)[1]
        for line in (root / "opt/slurm/etc/slurmdbd.conf").read_text().splitlines()
        if line.startswith("StoragePass=")
    )
    (mysql,) = [call for call in runner.calls if call["argv"][0] == "mysql"]
    assert mysql["argv"] == ["mysql", "--user=root"]
    assert "CREATE DATABASE IF NOT EXISTS slurm_acct_db;" in mysql["stdin"]
    assert f"IDENTIFIED BY '{password}'" in mysql["stdin"]
    assert not [c for c in runner.commands if any(password in arg for arg in c)]


def test_daemons_start_in_order_mariadb_slurmdbd_slurmctld(controller):
    _, runner = controller
    started = [c[-1] for c in runner.commands if c[:3] == ["systemctl", "enable", "--now"]]
    assert started == ["mariadb", "slurmdbd", "slurmctld"]
    assert ["scontrol", "ping"] in runner.commands


def test_slurmd_unit_is_moved_aside_so_it_never_starts_on_the_controller(controller):
    root, runner = controller
    units = root / "etc/systemd/system"
    assert not (units / "slurmd.service").exists()
    assert (units / "slurmd.service.disabled-by-lifecycle").is_file()
    assert ["systemctl", "disable", "--now", "slurmd"] in runner.commands


def test_controller_gets_fsx_and_the_shared_home_but_no_neuron_venv(controller):
    root, runner = controller
    assert ["usermod", "--home", "/fsx/ubuntu", "ubuntu"] in runner.commands
    assert not (root / "fsx/envs/neuron").exists()  # envs/ itself is the user's (test_lifecycle_shared_tree)
    assert not (root / "fsx/neuron-cache").exists()


def test_accounting_off_leaves_slurmdbd_alone(root: Path, tmp_path: Path):
    params = json.loads(PARAMS.read_text())
    params["slurm_accounting"] = False
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    runner = recorder(fresh_rules())
    run_node(root, CONTROLLER_IP, runner, params=path)
    assert not (root / "opt/slurm/etc/slurmdbd.conf").exists()
    assert not [c for c in runner.commands if "slurmdbd" in c or c[0] == "mysql"]


def test_slurm_conf_include_is_added_when_the_platform_left_it_out(root: Path):
    conf = root / "opt/slurm/etc/slurm.conf"
    conf.write_text(conf.read_text().replace("Include /opt/slurm/etc/accounting.conf\n", ""))
    run_node(root, CONTROLLER_IP, recorder(fresh_rules()))
    assert conf.read_text().splitlines()[-1] == "Include /opt/slurm/etc/accounting.conf"


def test_controller_waits_for_slurm_conf_and_fails_when_it_never_comes(root: Path):
    (root / "opt/slurm/etc/slurm.conf").unlink()
    runner = recorder(fresh_rules())
    with pytest.raises(StepFailed, match=r"step 'wait_slurm_conf' failed: .*slurm.conf did not name the controller"):
        run_node(root, CONTROLLER_IP, runner, slurm_conf_timeout=0)
    assert not [c for c in runner.commands if c[:2] == ["systemctl", "enable"]]

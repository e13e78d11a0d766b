"""A login node: FSx and the shared home, slurmd only for the client config."""

from __future__ import annotations

from pathlib import Path

from lifecycle_fakes import LOGIN_IP, fresh_rules, recorder, rule, run_node


def test_login_node_fetches_config_from_the_controller_and_runs_no_daemon_of_its_own(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, LOGIN_IP, runner)
    dropin = (root / "etc/systemd/system/slurmd.service.d/50-conf-server.conf").read_text()
    assert "--conf-server 10.1.0.10" in dropin
    started = [c[-1] for c in runner.commands if c[:2] == ["systemctl", "enable"]]
    assert started == ["slurmd"]
    assert not (root / "etc/systemd/system/slurmctld.service").exists()


def test_login_node_tolerates_slurmd_exiting_after_fetching_the_config(root: Path):
    runner = recorder([rule(["systemctl", "is-active", "--quiet", "slurmd"], {"rc": 3}), *fresh_rules()])
    run_node(root, LOGIN_IP, runner)
    assert (root / "fsx/ubuntu/.ssh/id_ed25519").is_file()


def test_login_node_gets_no_neuron_setup(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, LOGIN_IP, runner)
    assert not (root / "fsx/envs").exists()
    assert not [c for c in runner.commands if c[0] in ("mysql", "scontrol")]

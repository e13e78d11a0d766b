"""on_create.sh end to end, in its dry-run mode: a fake root, recorded commands, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lifecycle_fakes import (
    LIFECYCLE,
    PARAMS,
    RESOURCES,
    WORKER_IP,
    fresh_rules,
    mark_mounted,
    mutating,
    provisioned_rules,
    rule,
    snapshot,
)

ON_CREATE = LIFECYCLE / "on_create.sh"


def on_create(root: Path, tmp_path: Path, rules: list[dict[str, Any]], **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rules": rules, "passthrough": ["ssh-keygen"]}))
    full_env = {
        **os.environ,
        "PROVISION_ROOT": str(root),
        "SAGEMAKER_RESOURCE_CONFIG_PATH": str(RESOURCES),
        "PROVISIONING_PARAMETERS_PATH": str(PARAMS),
        "PYTHON": sys.executable,
        "NODE_IP": WORKER_IP,
        "PROVISION_RECORD": str(tmp_path / "commands.jsonl"),
        "PROVISION_SCRIPT": str(script),
        "RETRY_DELAY": "0",
        **env,
    }
    return subprocess.run(["bash", str(ON_CREATE)], env=full_env, capture_output=True, text=True, timeout=60)


def recorded(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "commands.jsonl"
    return [json.loads(line)["argv"] for line in path.read_text().splitlines()] if path.exists() else []


def test_worker_provisions_and_logs_every_step(root: Path, tmp_path: Path):
    proc = on_create(root, tmp_path, fresh_rules())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (root / "var/log/provision/provisioning.log").read_text()
    for step in ("mount_fsx", "shared_home", "neuron_venv", "start_slurmd"):
        assert f"<== {step} ok" in log
    assert log.rstrip().endswith("done")
    assert ["systemctl", "enable", "--now", "slurmd"] in recorded(tmp_path)


def test_running_it_again_changes_nothing_but_the_log(root: Path, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert on_create(root, first, fresh_rules()).returncode == 0
    mark_mounted(root)
    log = "var/log/provision/provisioning.log"
    before = {k: v for k, v in snapshot(root).items() if k != log}
    proc = on_create(root, second, provisioned_rules())
    assert proc.returncode == 0, proc.stdout
    assert {k: v for k, v in snapshot(root).items() if k != log} == before
    assert mutating(recorded(second)) == []


def test_failing_step_exits_non_zero_and_names_the_step(root: Path, tmp_path: Path):
    rules = [rule(["modprobe", "lnet"], {"rc": 1, "stderr": "modprobe: FATAL: Module lnet not found"}), *fresh_rules()]
    proc = on_create(root, tmp_path, rules)
    assert proc.returncode == 1
    assert "ERROR: step 'mount_fsx' failed: `modprobe lnet` exited 1: modprobe: FATAL: Module lnet not found" in proc.stdout
    assert "step 'mount_fsx' failed" in (root / "var/log/provision/provisioning.log").read_text()
    assert not [c for c in recorded(tmp_path) if c[:2] == ["systemctl", "enable"]]


def test_missing_resource_config_fails_before_any_step(root: Path, tmp_path: Path):
    proc = on_create(root, tmp_path, fresh_rules(), SAGEMAKER_RESOURCE_CONFIG_PATH=str(tmp_path / "absent.json"))
    assert proc.returncode == 1
    assert f"FAILED: resource config not found: {tmp_path / 'absent.json'}" in proc.stdout
    assert recorded(tmp_path) == []


def test_missing_provisioning_parameters_fail_before_any_step(root: Path, tmp_path: Path):
    proc = on_create(root, tmp_path, fresh_rules(), PROVISIONING_PARAMETERS_PATH=str(tmp_path / "absent.json"))
    assert proc.returncode == 1
    assert "FAILED: provisioning parameters not found" in proc.stdout


def test_malformed_provisioning_parameters_exit_2_naming_the_file(root: Path, tmp_path: Path):
    bad = tmp_path / "provisioning_parameters.json"
    bad.write_text("{not json")
    proc = on_create(root, tmp_path, fresh_rules(), PROVISIONING_PARAMETERS_PATH=str(bad))
    assert proc.returncode == 2
    assert f"ERROR: bad input: {bad}: not valid JSON" in proc.stdout
    assert recorded(tmp_path) == []


def test_node_ip_in_no_group_exits_2(root: Path, tmp_path: Path):
    proc = on_create(root, tmp_path, fresh_rules(), NODE_IP="10.9.9.9")
    assert proc.returncode == 2
    assert "this node's IP 10.9.9.9 is in no instance group" in proc.stdout

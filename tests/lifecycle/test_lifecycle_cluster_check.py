"""The post-create check: one JSON report per node, gathered with srun on every node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lifecycle_daemons import slurm_cmd, slurm_conf, stop, wait_until
from lifecycle_fakes import LIFECYCLE, PARAMS, RESOURCES, WORKER_IP, mark_mounted, provisioned_rules
from provision.__main__ import main
from provision.node import primary_ip


def check_node(root: Path, tmp_path: Path, rules: list[dict]) -> int:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rules": rules}))
    return main(
        ["check-node", "--params", str(PARAMS), "--resource-config", str(RESOURCES), "--root", str(root),
         "--ip", WORKER_IP, "--script", str(script)]
    )


def test_provisioned_trn1_worker_reports_ok(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    mark_mounted(root)
    for i in range(16):
        (root / f"dev/neuron{i}").touch()
    assert check_node(root, tmp_path, provisioned_rules()) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["neuron_devices"] == 16


def test_worker_without_neuron_devices_or_fsx_fails_naming_both(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert check_node(root, tmp_path, provisioned_rules()) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failures"] == ["FSx not mounted", "no Neuron devices"]


@pytest.fixture
def one_node_cluster(work: Path, munge: Path) -> Iterator[Path]:
    """slurmctld and one slurmd (trn1-node) on this machine, in this test's directory."""
    if not all(shutil.which(t) for t in ("slurmctld", "slurmd", "srun", "sinfo")):
        pytest.fail("slurm-wlm is not installed: run `make setup`")
    conf = slurm_conf(work, munge)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmctld", "-f", str(conf), "-i"], env=env, check=True, timeout=30)
    try:
        subprocess.run(["slurmd", "-f", str(conf), "-N", "trn1-node"], env=env, check=True, timeout=30)
        try:
            wait_until(
                "trn1-node idle",
                lambda: slurm_cmd(conf, "sinfo", "-h", "-N", "-o", "%T").stdout.strip() == "idle",
                timeout_s=60,
            )
            yield conf
        finally:
            stop(work / "slurmd.pid")
    finally:
        stop(work / "slurmctld.pid")


@pytest.mark.slurm
def test_cluster_check_runs_on_every_node_and_fails_where_fsx_is_missing(one_node_cluster: Path, tmp_path: Path):
    """This machine has no FSx or Neuron devices: the real srun run must report that and exit 1."""
    resources = json.loads(RESOURCES.read_text())
    resources["InstanceGroups"][2]["Instances"][0]["CustomerIpAddress"] = primary_ip()
    rc_path = tmp_path / "resource_config.json"
    rc_path.write_text(json.dumps(resources))
    env = {
        **os.environ,
        "SLURM_CONF": str(one_node_cluster),
        "LIFECYCLE_DIR": str(LIFECYCLE),
        "SAGEMAKER_RESOURCE_CONFIG_PATH": str(rc_path),
        "PROVISIONING_PARAMETERS_PATH": str(PARAMS),
        "PYTHON": sys.executable,
    }
    proc = subprocess.run(
        ["bash", str(LIFECYCLE / "cluster_check.sh")], env=env, capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1
    assert reports[0]["ok"] is False
    assert "FSx not mounted" in reports[0]["failures"]
    assert "post-create check: FAILED on at least one of 1 node(s)" in proc.stderr

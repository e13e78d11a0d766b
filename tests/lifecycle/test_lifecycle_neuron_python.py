"""The Neuron venv's interpreter: one that optimum-neuron 0.4.5 supports (>=3.10,<3.12), part of the stamp,
and a retried install instead of a node lost to one registry hiccup."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_fakes import WORKER_IP, fresh_rules, recorder, rule, run_node
from provision.orchestrator import StepFailed


def image_python(root: Path, *versions: str, default: str) -> None:
    """What the image ships in /usr/bin: the given python3.X files and python3 -> the default one."""
    usr_bin = root / "usr/bin"
    for old in usr_bin.glob("python3*"):
        old.unlink()
    for version in versions:
        (usr_bin / f"python{version}").touch()
    (usr_bin / "python3").symlink_to(f"python{default}")


def venv_commands(commands: list[list[str]]) -> list[list[str]]:
    return [c for c in commands if c[1:3] == ["-m", "venv"]]


def test_an_image_with_only_python_3_12_is_refused_naming_its_python(root: Path) -> None:
    image_python(root, "3.12", default="3.12")
    runner = recorder(fresh_rules())
    with pytest.raises(StepFailed, match=r"needs Python >=3.10,<3.12, but this image's /usr/bin/python3 is "
                                         r"python3.12 and it has no /usr/bin/python3.11 or /usr/bin/python3.10"):
        run_node(root, WORKER_IP, runner)
    assert not venv_commands(runner.commands)


def test_a_supported_python_beside_the_default_one_is_used(root: Path) -> None:
    image_python(root, "3.12", "3.11", default="3.12")  # Ubuntu 24.04 with deadsnakes' 3.11
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner)
    assert venv_commands(runner.commands)[0][0] == "/usr/bin/python3.11"


def test_an_image_update_that_changes_python_rebuilds_the_venv(root: Path) -> None:
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    image_python(root, "3.11", default="3.11")  # UpdateClusterSoftware: python3.10 is gone
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner)
    assert venv_commands(runner.commands) == [
        ["/usr/bin/python3.11", "-m", "venv", "--clear", str(root / "fsx/envs/neuron")]]


def test_a_failed_install_is_retried_before_the_node_fails(root: Path) -> None:
    flaky = rule([str(root / "fsx/envs/neuron/bin/pip"), "install"],
                 {"rc": 1, "stderr": "ERROR: HTTP error 503 while getting torch"}, {"rc": 0})
    runner = recorder([flaky, *fresh_rules()])
    run_node(root, WORKER_IP, runner)
    pip_runs = [c for c in runner.commands if c[:2] == [str(root / "fsx/envs/neuron/bin/pip"), "install"]]
    assert len(pip_runs) >= 2 and (root / "fsx/envs/neuron/.provisioned").is_file()
    assert "retries = 10" in (root / "fsx/envs/neuron/pip.conf").read_text()

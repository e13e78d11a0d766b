"""The README's lifecycle dry run, run exactly as written, from the repository's own files."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from lifecycle_fakes import REPO, make_root

README = (REPO / "README.md").read_text()


def readme_command() -> str:
    section = README[README.index("## Node bootstrap"):README.index("## Running the pipeline")]
    (command,) = re.findall(r"```bash\n\s*(.+?)\n\s*```", section)
    return command.strip()


def dry_run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISION", "SAGEMAKER_", "NODE_IP"))}
    return subprocess.run(["bash", "-c", readme_command()], cwd=REPO, env={**env, "DRY_RUN_DIR": str(tmp_path)},
                          text=True, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dry run of every role for the module's tests; its DRY_RUN_DIR."""
    out = tmp_path_factory.mktemp("dry")
    result = dry_run(out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_readme_documents_one_command(tmp_path: Path):
    assert readme_command() == "bash lifecycle/dry_run.sh"


def test_the_dry_run_provisions_each_role_on_a_fake_root(dry: Path):
    for role, last_step in (("controller", "start_slurmctld"), ("login", "start_slurmd"), ("worker", "start_slurmd")):
        log = (dry / role / "on_create.log").read_text()
        assert f"<== {last_step} ok" in log and "provisioning of" in log, role
    assert "AccountingStorageType=accounting_storage/slurmdbd" in (
        dry / "controller/root/opt/slurm/etc/accounting.conf").read_text()
    assert (dry / "worker/root/fsx/envs/neuron/neuron_env.sh").is_file()
    assert "--conf-server 10.1.0.10" in (
        dry / "login/root/etc/systemd/system/slurmd.service.d/50-conf-server.conf").read_text()


def test_the_dry_run_records_the_commands_instead_of_running_them(dry: Path):
    commands = [json.loads(line)["argv"] for line in (dry / "worker/commands.jsonl").read_text().splitlines()]
    mount = [c for c in commands if c[:3] == ["mount", "-t", "lustre"]]
    assert mount and mount[0][-1] == str(dry / "worker/root/fsx")


def test_the_dry_run_starts_from_the_same_fresh_node_as_the_tests(dry: Path, tmp_path: Path):
    """One description of a fresh node (provision.fresh_node): every path of the tests' node is on each
    dry-run root (where the lifecycle moved it, if it did), of the same kind, with the same content
    unless the lifecycle wrote it, and /fsx has the same owner and mode."""
    fresh = make_root(tmp_path / "fresh")
    for role in ("controller", "login", "worker"):
        node = dry / role / "root"
        log = [line.split() for line in (dry / role / "on_create.log").read_text().splitlines()]
        wrote = {words[1] for words in log if words[:1] == ["wrote"]}
        moved = {words[1]: words[3] for words in log if words[:1] == ["moved"] and len(words) == 4}
        for path in sorted(fresh.rglob("*")):
            rel = path.relative_to(fresh)
            twin = node / moved.get(f"/{rel}", f"/{rel}").lstrip("/")
            assert kind(twin) == kind(path), (role, rel)
            if path.is_file() and not path.is_symlink() and f"/{rel}" not in wrote:
                assert twin.read_bytes() == path.read_bytes(), (role, rel)
        ours, theirs = (fresh / "fsx").stat(), (node / "fsx").stat()
        assert (theirs.st_uid, theirs.st_mode) == (ours.st_uid, ours.st_mode), role


def kind(path: Path) -> str:
    if path.is_symlink():
        return f"link to {os.readlink(path)}"
    return "dir" if path.is_dir() else "file" if path.is_file() else "missing"

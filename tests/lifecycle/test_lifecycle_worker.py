"""A trn1 worker's first run on a fresh node: the commands it issues and the files it writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lifecycle_fakes import LIFECYCLE, LUSTRE, OLD_KEY, WORKER_IP, fresh_rules, recorder, rule, run_node
from provision.fresh_node import BASHRC, FSTAB
from provision.orchestrator import StepFailed


@pytest.fixture
def worker(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner)
    return root, runner.commands


def index(commands: list[list[str]], prefix: list[str]) -> int:
    for i, c in enumerate(commands):
        if c[: len(prefix)] == prefix:
            return i
    raise AssertionError(f"{prefix} not issued; commands: {commands}")


def test_loads_lustre_modules_then_mounts_fsx_with_flock(worker):
    root, commands = worker
    lnet = index(commands, ["modprobe", "lnet"])
    lustre = index(commands, ["modprobe", "lustre"])
    mount = index(commands, ["mount", "-t", "lustre"])
    assert lnet < lustre < mount
    assert commands[mount] == ["mount", "-t", "lustre", "-o", "noatime,flock", LUSTRE, str(root / "fsx")]


def test_fstab_gets_one_lustre_line_with_netdev(worker):
    root, _ = worker
    fstab = (root / "etc/fstab").read_text().splitlines()
    assert fstab == [  # the image's own lines kept
        *FSTAB.splitlines(),
        f"{LUSTRE} /fsx lustre defaults,noatime,flock,_netdev 0 0",
    ]


def test_home_is_copied_to_fsx_and_the_user_pointed_at_it(worker):
    root, commands = worker
    assert ["usermod", "--home", "/fsx/ubuntu", "ubuntu"] in commands
    assert (root / "fsx/ubuntu/.bashrc").read_text() == BASHRC
    assert ["chown", "-R", "ubuntu:ubuntu", str(root / "fsx/ubuntu")] in commands


def test_ssh_key_is_generated_once_and_trusted_by_every_node(worker):
    root, _ = worker
    ssh = root / "fsx/ubuntu/.ssh"
    pub = (ssh / "id_ed25519.pub").read_text().strip()
    assert pub.startswith("ssh-ed25519 ")
    assert (ssh / "authorized_keys").read_text().splitlines() == [OLD_KEY, pub]
    assert (ssh / "authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (ssh / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert "StrictHostKeyChecking no" in (ssh / "config").read_text()


def test_shared_compile_cache_is_sticky_and_world_writable(worker):
    root, _ = worker
    assert (root / "fsx/neuron-cache").stat().st_mode & 0o7777 == 0o1777


def test_neuron_environment_points_compiler_at_the_shared_cache(worker):
    root, _ = worker
    env = (root / "fsx/envs/neuron/neuron_env.sh").read_text()
    # the cluster's cache as a default only; every Neuron variable comes from the project's one file
    assert 'NEURON_CACHE_DIR="${NEURON_CACHE_DIR:-/fsx/neuron-cache}"' in env
    assert ". /fsx/src/hyperpod-trn-lora/jobs/lib/neuron_env.sh" in env
    assert "/fsx/envs/neuron/neuron_env.sh" in (root / "etc/profile.d/hyperpod-neuron.sh").read_text()


def test_venv_gets_optimum_neuron_with_the_pinned_neuron_stack(worker):
    root, commands = worker
    venv = root / "fsx/envs/neuron"
    assert ["/usr/bin/python3.10", "-m", "venv", "--clear", str(venv)] in commands
    pip = commands[index(commands, [str(venv / "bin/pip"), "install"])]
    # the indexes live in the venv's pip.conf, so the env job's pip uses them too
    conf = (venv / "pip.conf").read_text()
    assert "https://pip.repos.neuron.amazonaws.com" in conf and "https://download.pytorch.org/whl/cpu" in conf
    assert pip[pip.index("-r") + 1] == str(venv / "requirements.txt")
    assert pip[pip.index("-c") + 1] == str(venv / "constraints.txt")
    assert (venv / "requirements.txt").read_text() == "optimum-neuron[neuronx,training]==0.4.5\n"
    pins = (venv / "constraints.txt").read_text().splitlines()
    assert "neuronx-cc==2.21.33363.0" in pins
    assert "torch-neuronx==2.8.0.2.10.16998" in pins
    assert "torch==2.8.0+cpu" in pins  # the CPU build: PyPI's default torch brings 4 GB of CUDA wheels
    assert "neuronx_distributed==0.15.22404" in pins
    assert "libneuronxla==2.2.12677.0" in pins
    assert (venv / ".provisioned").is_file()


def test_python3_venv_comes_from_apt_with_a_dpkg_lock_timeout(worker):
    _, commands = worker
    install = commands[index(commands, ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o"])]
    assert install[3:5] == ["-o", "DPkg::Lock::Timeout=600"]
    assert ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=600",
            "install", "-y", "-q", "--no-install-recommends", "python3.10-venv"] in commands


def test_slurmd_starts_last_with_the_controller_as_conf_server(worker):
    root, commands = worker
    dropin = (root / "etc/systemd/system/slurmd.service.d/50-conf-server.conf").read_text()
    assert dropin == "[Service]\nExecStart=\nExecStart=/opt/slurm/sbin/slurmd -D -s $SLURMD_OPTIONS --conf-server 10.1.0.10\n"
    start = index(commands, ["systemctl", "enable", "--now", "slurmd"])
    assert start > index(commands, [str(root / "fsx/envs/neuron/bin/pip")])
    assert (root / "etc/systemd/system/slurmctld.service.disabled-by-lifecycle").is_file()


def test_slurmctld_unit_from_a_package_is_masked_instead(root: Path):
    (root / "etc/systemd/system/slurmctld.service").unlink()
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner)
    assert ["systemctl", "mask", "slurmctld"] in runner.commands


def test_lifecycle_scripts_are_kept_on_the_node_for_the_post_create_check(worker):
    root, _ = worker
    installed = root / "opt/hyperpod-lifecycle"
    assert (installed / "on_create.sh").read_bytes() == (LIFECYCLE / "on_create.sh").read_bytes()
    assert (installed / "cluster_check.sh").stat().st_mode & 0o111
    assert (installed / "provision/__main__.py").is_file()
    assert not list(installed.rglob("__pycache__"))


def test_worker_runs_no_controller_steps(worker):
    root, commands = worker
    started = [c[-1] for c in commands if c[:2] in (["systemctl", "enable"], ["systemctl", "restart"])]
    assert started == ["slurmd"]
    assert not [c for c in commands if c[0] == "mysql"]
    assert (root / "opt/slurm/etc/accounting.conf").read_text() == ""


def test_training_package_shipped_with_the_scripts_is_copied_to_fsx_and_installed(root: Path, tmp_path: Path):
    bundle = tmp_path / "bundle"
    shutil.copytree(LIFECYCLE, bundle, ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "project/training").mkdir(parents=True)
    (bundle / "project/pyproject.toml").write_text("[project]\nname = 'hyperpod-trn-lora'\n")
    (bundle / "project/training/__init__.py").write_text('"""training"""\n')
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner, bundle=bundle)
    project = root / "fsx/src/hyperpod-trn-lora"
    assert (project / "training/__init__.py").read_text() == '"""training"""\n'
    editable = [c for c in runner.commands if "-e" in c]
    assert editable and editable[0][-1] == f"{project}[training]"
    assert not (root / "opt/hyperpod-lifecycle/project").exists()


def test_mount_is_retried_until_it_succeeds(root: Path):
    rules = [rule(["mount"], {"rc": 32, "stderr": "mount.lustre: Connection timed out"}, {"rc": 32}, {"rc": 0})]
    runner = recorder(rules + fresh_rules())
    run_node(root, WORKER_IP, runner)
    assert len([c for c in runner.commands if c[0] == "mount"]) == 3


def test_mount_that_never_succeeds_fails_the_step_naming_the_attempts(root: Path):
    runner = recorder([rule(["mount"], {"rc": 32, "stderr": "mount.lustre: Connection timed out"}), *fresh_rules()])
    with pytest.raises(StepFailed, match=r"step 'mount_fsx' failed: mounting .* failed after 3 attempts"):
        run_node(root, WORKER_IP, runner, mount_attempts=3)
    assert not [c for c in runner.commands if c[:2] == ["systemctl", "enable"]]


def test_fsx_mount_point_taken_by_another_filesystem_is_an_error(root: Path):
    with (root / "proc/mounts").open("a") as f:
        f.write("/dev/nvme1n1 /fsx ext4 rw 0 0\n")
    runner = recorder([rule(["mountpoint"], {"rc": 0}), *fresh_rules()])
    with pytest.raises(StepFailed, match=r"/fsx is already a mount point of /dev/nvme1n1 \(ext4\)"):
        run_node(root, WORKER_IP, runner)


def test_the_conf_server_survives_options_set_in_the_units_environment_file(root: Path):
    # The AMI's unit reads EnvironmentFile=-/etc/default/slurmd, whose variables override any
    # Environment= of a drop-in (systemd.exec(5)): the conf server must not travel in SLURMD_OPTIONS.
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/slurmd").write_text('SLURMD_OPTIONS="-M"\n')
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    dropin = (root / "etc/systemd/system/slurmd.service.d/50-conf-server.conf").read_text()
    (execstart,) = [line for line in dropin.splitlines() if line.startswith("ExecStart=/")]
    assert execstart.endswith(" --conf-server 10.1.0.10")
    assert "Environment=" not in dropin


def test_slurmd_unit_without_options_variable_gets_an_execstart_override(root: Path):
    (root / "etc/systemd/system/slurmd.service").write_text(
        "[Service]\nExecStart=/opt/slurm/sbin/slurmd -D -s\n"
    )
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    dropin = (root / "etc/systemd/system/slurmd.service.d/50-conf-server.conf").read_text()
    assert dropin == "[Service]\nExecStart=\nExecStart=/opt/slurm/sbin/slurmd -D -s --conf-server 10.1.0.10\n"


def test_slurmd_that_does_not_come_up_fails_the_worker(root: Path):
    runner = recorder([rule(["systemctl", "is-active", "--quiet", "slurmd"], {"rc": 3}), *fresh_rules()])
    with pytest.raises(StepFailed, match=r"step 'start_slurmd' failed: starting slurmd failed after 6 attempts"):
        run_node(root, WORKER_IP, runner)

"""A fake node root laid out like a node fresh from the HyperPod image, before the lifecycle runs.

The one description of that node: the README's dry run (lifecycle/dry_run.sh) builds its
roots with it and the lifecycle tests build theirs with it, so the dry run meets exactly
the node the tests prove the bootstrap against. A stand-in kinder than the platform hides
defects, so each fact below is what a real node shows, with its source:

- /fsx exists, root-owned 0755, and nothing is mounted on it yet. The recorded `mount` never
  happens, so the directory stands for the file system the mount would show: a new FSx for
  Lustre's root belongs to root (managing its permissions takes root:
  https://docs.aws.amazon.com/fsx/latest/LustreGuide/root-squash.html), and AWS's lifecycle
  creates the mount point as root with mode 755 (aws-samples/awsome-distributed-training,
  1.architectures/5.sagemaker-hyperpod/LifecycleScripts/base-config/mount_fsx.sh, mount_fs).
  The default user can create nothing at its top. Owned by root only where this runs as root
  (the tests); a dry run by another user owns it itself, as it owns the whole fake root.
- The default user `ubuntu` has a local home, /home/ubuntu, with the image's dotfiles
  (.bashrc from /etc/skel) and an ssh authorized_keys holding a key put there before the
  lifecycle runs: AWS's lifecycle moves that home to FSx with `usermod -m` and keeps what
  authorized_keys holds when it adds the cluster key (base-config/utils/fsx_ubuntu.sh,
  base-config/utils/gen-keypair-ubuntu.sh), so both must arrive on FSx intact.
- /usr/bin/python3 is 3.10: the image is Ubuntu 22.04 (AWS's Ubuntu 22.04 base DLAMI lists
  python_location /usr/bin/python3.10: https://docs.amazonaws.cn/dlami/latest/devguide/
  aws-deep-learning-ami-gpubasesinglecuda-ul2204-2026-01-02.md); lifecycle/provision/neuron.py
  builds the Neuron venv on it.
- Slurm is installed under /opt/slurm with HyperPod's slurm.conf (examples/slurm.conf) and
  an empty accounting.conf that slurm.conf includes and the lifecycle fills (AWS's lifecycle
  writes its accounting settings to /opt/slurm/etc/accounting.conf: base-config/
  setup_mariadb_accounting.sh), and the image's slurmd and slurmctld units are in
  /etc/systemd/system (examples/*.service, the AMI's units in shape).
- /etc/fstab holds only the root file system, and /proc/mounts shows only it.

What the node's commands answer (nothing mounted, daemons stopped, home in /home) is the
other half of the description, examples/fresh_node_answers.json, which both read too.

Run as `python3 -m provision.fresh_node ROOT` (the dry run does) or call make_fresh_node.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
USER = "ubuntu"
HOME = f"/home/{USER}"
# A key someone put there before the lifecycle ran: it must still let them in afterwards.
AUTHORIZED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHyperPodProvidedKeyForTheDefaultUser operator@laptop"
# The first line of Ubuntu's /etc/skel/.bashrc; the rest does not matter here.
BASHRC = "# ~/.bashrc: executed by bash(1) for non-login shells.\n"
FSX = "/fsx"
FSTAB = "LABEL=cloudimg-rootfs / ext4 defaults,discard 0 1\n"
PROC_MOUNTS = "/dev/root / ext4 rw,relatime 0 0\n"
PYTHON = "python3.10"
SLURM_ETC = "/opt/slurm/etc"
UNITS = ("slurmd.service", "slurmctld.service")


def make_fresh_node(root: Path, examples: Path = EXAMPLES) -> Path:
    """Lay out a fresh node under `root` (which must not exist yet, or be empty); `root`."""
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: a fresh node starts from nothing")

    def at(p: str) -> Path:
        return root / p.lstrip("/")

    for d in ("/etc/systemd/system", "/proc", "/dev", SLURM_ETC, f"{HOME}/.ssh", "/usr/bin"):
        at(d).mkdir(parents=True, exist_ok=True)
    at("/etc/fstab").write_text(FSTAB)
    at("/proc/mounts").write_text(PROC_MOUNTS)
    at(f"/usr/bin/{PYTHON}").touch()
    at("/usr/bin/python3").symlink_to(PYTHON)
    at(f"{HOME}/.bashrc").write_text(BASHRC)
    at(f"{HOME}/.ssh/authorized_keys").write_text(AUTHORIZED_KEY + "\n")
    shutil.copy(examples / "slurm.conf", at(f"{SLURM_ETC}/slurm.conf"))
    at(f"{SLURM_ETC}/accounting.conf").write_text("")
    for unit in UNITS:
        shutil.copy(examples / unit, at(f"/etc/systemd/system/{unit}"))
    fsx = at(FSX)
    fsx.mkdir()
    os.chmod(fsx, 0o755)  # mkdir's mode is masked by the umask
    if os.geteuid() == 0:
        os.chown(fsx, 0, 0)
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m provision.fresh_node", description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="where to lay out the fake node (a new or empty directory)")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="the example slurm.conf and units")
    args = p.parse_args(argv)
    try:
        make_fresh_node(args.root, args.examples)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

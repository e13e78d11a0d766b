"""Shared by the lifecycle tests (imported by name; conftest.py only holds fixtures).

A fake node root and a recording runner: the bootstrap runs for real against both.

Files land in a temporary directory laid out like a HyperPod node; commands that need
real hardware or system services (mount, modprobe, systemctl, usermod) are recorded
and answered from rules. The rules describe a node in one of two states: fresh from
the AMI, or already provisioned (what the first run's commands leave behind).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LIFECYCLE = REPO / "lifecycle"
# The example inputs the README's dry run uses (lifecycle/dry_run.sh) are the tests' fixtures too.
FIXTURES = LIFECYCLE / "examples"
sys.path.insert(0, str(LIFECYCLE))

from provision.config import load_params, load_resource_config  # noqa: E402
from provision.context import Context, Settings  # noqa: E402
from provision.fresh_node import AUTHORIZED_KEY, make_fresh_node  # noqa: E402
from provision.host import Host  # noqa: E402
from provision.node import resolve_node  # noqa: E402
from provision.orchestrator import provision  # noqa: E402
from provision.runner import RecordingRunner  # noqa: E402

CONTROLLER_IP = "10.1.0.10"
LOGIN_IP = "10.1.0.20"
WORKER_IP = "10.1.1.31"
PARAMS = FIXTURES / "provisioning_parameters.json"
RESOURCES = FIXTURES / "resource_config.json"
FSX_DNS = "fs-0123456789abcdef0.fsx.us-west-2.amazonaws.com"
FSX_IP = "10.1.0.45"  # the file system's address, what its DNS name resolves to
LUSTRE = f"{FSX_DNS}@tcp:/abcdefgh"  # what the lifecycle mounts (and writes to fstab)
# What the kernel shows in /proc/mounts once mounted: the MGS's NID, an IP, not the DNS name.
LUSTRE_MOUNTED = f"{FSX_IP}@tcp:/abcdefgh"
OLD_KEY = AUTHORIZED_KEY  # on the fresh node before the lifecycle runs; it must survive the home move

# Commands that only look: the second run of a provisioned node may issue these and nothing else.
PROBES = {"mountpoint", "getent", "dpkg-query", "scontrol"}
SYSTEMCTL_PROBES = {"is-active", "is-enabled"}


def rule(prefix: list[str], *results: dict[str, Any]) -> dict[str, Any]:
    return {"argv": prefix, "results": list(results) or [{}]}


def fresh_rules() -> list[dict[str, Any]]:
    """A node straight from the AMI: nothing mounted, daemons stopped, home in /home (the dry run's answers)."""
    rules: list[dict[str, Any]] = json.loads((FIXTURES / "fresh_node_answers.json").read_text())["rules"]
    return rules


def provisioned_rules() -> list[dict[str, Any]]:
    """The same node after a first run: FSx mounted, home moved, daemons up, packages in."""
    return [
        rule(["mountpoint"], {"rc": 0}),
        rule(["getent", "passwd", "ubuntu"], {"stdout": "ubuntu:x:1000:1000:Ubuntu:/fsx/ubuntu:/bin/bash\n"}),
        rule(["dpkg-query"], {"stdout": "install ok installed"}),
        rule(["systemctl", "is-active"], {"rc": 0}),
        rule(["systemctl", "is-enabled"], {"rc": 1, "stdout": "masked\n"}),
        rule(["scontrol", "ping"], {"stdout": "Slurmctld(primary) at ip-10-1-0-10 is UP\n"}),
        rule(["getent", "ahostsv4", FSX_DNS], {"stdout": f"{FSX_IP}      STREAM {FSX_DNS}\n{FSX_IP}      DGRAM\n"}),
        rule(["apt-mark", "showhold"], {"stdout": "lustre-client-modules-aws\n"}),
    ]


def recorder(rules: list[dict[str, Any]]) -> RecordingRunner:
    return RecordingRunner(rules, passthrough=["ssh-keygen"])


def make_root(path: Path) -> Path:
    """A node as HyperPod hands it to the lifecycle scripts: the dry run's node, from the one description."""
    return make_fresh_node(path, FIXTURES)


def mark_mounted(root: Path) -> None:
    """What the kernel shows once the recorded mount has happened."""
    with (root / "proc/mounts").open("a") as f:
        f.write(f"{LUSTRE_MOUNTED} /fsx lustre rw,noatime,flock,lazystatfs 0 0\n")


def run_node(
    root: Path,
    ip: str,
    runner: RecordingRunner,
    params: Path = PARAMS,
    bundle: Path = LIFECYCLE,
    **settings: Any,
) -> Context:
    p = load_params(params)
    node = resolve_node(p, load_resource_config(RESOURCES), ip)
    ctx = Context(p, node, Host(root, runner, sleep=lambda s: None, retry_delay=0), Settings(bundle, **settings))
    provision(ctx)
    return ctx


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def mutating(commands: list[list[str]]) -> list[list[str]]:
    return [
        c
        for c in commands
        if c[0] not in PROBES and not (c[0] == "systemctl" and c[1] in SYSTEMCTL_PROBES)
        and c[:2] != ["apt-mark", "showhold"]
    ]

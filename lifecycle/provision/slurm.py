"""Slurm on HyperPod: the platform writes slurm.conf on the controller; we start the daemons.

Workers run slurmd in configless mode (--conf-server), fetching the config from
slurmctld, so only the controller needs the file.
"""

from __future__ import annotations

import re
import time

from provision.context import SLURM_ETC, Context
from provision.host import StepError
from provision.node import Role

SLURMD_DROPIN = "/etc/systemd/system/slurmd.service.d/50-conf-server.conf"
SLURMD_UNIT = "/etc/systemd/system/slurmd.service"


def wait_slurm_conf(ctx: Context) -> None:
    """HyperPod writes slurm.conf while the lifecycle scripts run; wait for it to name the controller."""
    path = f"{SLURM_ETC}/slurm.conf"
    deadline = time.monotonic() + ctx.settings.slurm_conf_timeout
    while True:
        text = ctx.host.read(path) or ""
        if any(ip in text for ip in ctx.node.controller_ips) or ctx.node.name in text:
            print(f"{path} names the controller", flush=True)
            return
        if time.monotonic() >= deadline:
            raise StepError(
                f"{path} did not name the controller ({', '.join(ctx.node.controller_ips)}) "
                f"within {ctx.settings.slurm_conf_timeout:.0f}s"
            )
        ctx.host.sleep(min(5.0, ctx.settings.slurm_conf_timeout))


def is_active(ctx: Context, unit: str) -> bool:
    return ctx.host.runner.run(["systemctl", "is-active", "--quiet", unit], check=False).ok


def keep_stopped(ctx: Context, unit: str) -> None:
    """The AMI ships both daemons' units; the wrong one on a node must never start.

    `systemctl mask` refuses a unit whose file is in /etc/systemd/system, where the
    HyperPod AMI puts Slurm's, so such a file is moved aside (systemd ignores it then).
    """
    run = ctx.host.runner.run
    unit_file = f"/etc/systemd/system/{unit}.service"
    aside = f"{unit_file}.disabled-by-lifecycle"
    if ctx.host.path(unit_file).is_file() and not ctx.host.path(unit_file).is_symlink():
        run(["systemctl", "disable", "--now", unit], check=False)
        ctx.host.path(unit_file).replace(ctx.host.path(aside))
        print(f"moved {unit_file} to {aside}", flush=True)
        run(["systemctl", "daemon-reload"])
    elif ctx.host.exists(aside):
        print(f"{unit} already kept from starting ({aside})", flush=True)
    elif run(["systemctl", "is-enabled", unit], check=False).stdout.strip() != "masked":
        run(["systemctl", "disable", "--now", unit], check=False)
        run(["systemctl", "mask", unit])


def start(ctx: Context, unit: str, changed: bool = False, require_active: bool = True) -> None:
    """Start and enable `unit`, or restart it when its config `changed`; a no-op when already right."""
    run = ctx.host.runner.run
    active = is_active(ctx, unit)
    if active and not changed:
        print(f"{unit} already active", flush=True)
        return
    if changed:
        run(["systemctl", "daemon-reload"])
    if active:
        run(["systemctl", "enable", unit])
        run(["systemctl", "restart", unit])
    else:
        run(["systemctl", "enable", "--now", unit])
    if not require_active:
        return

    def attempt() -> str | None:
        return None if is_active(ctx, unit) else f"{unit} is not active"

    ctx.host.retry(f"starting {unit}", 6, attempt)


def start_slurmctld(ctx: Context) -> None:
    keep_stopped(ctx, "slurmd")
    start(ctx, "slurmctld", changed="slurm_conf" in ctx.changed)

    def attempt() -> str | None:
        res = ctx.host.runner.run(["scontrol", "ping"], check=False)
        return None if res.ok and "UP" in res.stdout else f"scontrol ping: {res.stdout.strip() or res.stderr.strip()}"

    ctx.host.retry("slurmctld answering scontrol ping", 6, attempt)


def slurmd_dropin(ctx: Context) -> str:
    """A systemd drop-in that starts slurmd with --conf-server, written into ExecStart itself.

    Not through `Environment="SLURMD_OPTIONS=..."`: the AMI's unit reads
    `EnvironmentFile=-/etc/default/slurmd`, and variables from an EnvironmentFile= override
    those set with Environment= (systemd.exec(5)), so an SLURMD_OPTIONS there would drop the
    conf server. The reference writes the option into the unit's text for the same reason
    (awslabs/awsome-distributed-ai, 1.architectures/5.sagemaker-hyperpod/LifecycleScripts/
    base-config/start_slurm.sh:92, envsubst of SLURMD_OPTIONS into slurmd.service). The
    unit's own $SLURMD_OPTIONS stays, so options set in /etc/default/slurmd still apply.
    """
    servers = ",".join(ctx.node.controller_ips)
    options = f"--conf-server {servers}"
    unit = ctx.host.read(SLURMD_UNIT)
    if unit is None:
        raise StepError(f"{SLURMD_UNIT} not found: the node image's slurmd unit is needed to start slurmd")
    execs: list[str] = re.findall(r"^ExecStart=(.+)$", unit, flags=re.MULTILINE)
    if not execs:
        raise StepError(f"{SLURMD_UNIT} has no ExecStart line to add {options} to")
    command = re.sub(r"\s--conf-server\s+\S+", "", execs[-1].strip())
    return f"[Service]\nExecStart=\nExecStart={command} {options}\n"


def start_slurmd(ctx: Context) -> None:
    keep_stopped(ctx, "slurmctld")
    changed = ctx.host.write(SLURMD_DROPIN, slurmd_dropin(ctx))
    # A login node's slurmd only fetches the config for the client commands and may
    # exit after that (login nodes are not in the node list), so only workers must keep it up.
    start(ctx, "slurmd", changed=changed, require_active=ctx.node.role is Role.WORKER)

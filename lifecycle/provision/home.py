"""The default user's home on FSx, with one ssh key every node trusts.

With the home shared, the same key pair and authorized_keys are on every node, so
the user (and Slurm's MPI/torchrun launchers) can ssh between nodes.
"""

from __future__ import annotations

import shutil

from provision.context import Context
from provision.host import StepError

SSH_CONFIG = """\
# Written by the HyperPod lifecycle scripts. Nodes come and go inside the VPC;
# their host keys are not known ahead of time.
Host ip-* 10.* 172.* 192.168.*
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
"""


def current_home(ctx: Context, user: str) -> str:
    res = ctx.host.runner.run(["getent", "passwd", user], check=False)
    fields = res.stdout.strip().split(":")
    if not res.ok or len(fields) < 7:
        raise StepError(f"user '{user}' (default_user) does not exist on this node")
    return fields[5]


def move_home(ctx: Context) -> None:
    """Point the user's home at FSx; the first node copies the local home there."""
    user, home = ctx.params.default_user, ctx.params.home_dir
    old = current_home(ctx, user)
    if old == home:
        print(f"{user}'s home is already {home}", flush=True)
        return
    if not ctx.host.exists(home):
        src = ctx.host.path(old)
        if src.is_dir():
            shutil.copytree(src, ctx.host.path(home), symlinks=True)
        else:
            ctx.host.mkdir(home, 0o750)
        ctx.host.chown(home, user, recursive=True)
    ctx.host.runner.run(["usermod", "--home", home, user])


def ssh_keys(ctx: Context) -> None:
    user = ctx.params.default_user
    ssh = f"{ctx.params.home_dir}/.ssh"
    ctx.host.mkdir(ssh, 0o700, owner=user)
    key = f"{ssh}/id_ed25519"
    if not ctx.host.exists(key):
        ctx.host.runner.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{user}@hyperpod", "-f", str(ctx.host.path(key))]
        )
        ctx.host.chown(key, user)
        ctx.host.chown(f"{key}.pub", user)
    pub = ctx.host.read(f"{key}.pub")
    if not pub:
        raise StepError(f"{key}.pub is missing after ssh-keygen")
    auth_path = f"{ssh}/authorized_keys"
    authorized = ctx.host.read(auth_path) or ""
    lines = authorized.splitlines()
    if pub.strip() not in lines:
        lines.append(pub.strip())
    ctx.host.write(auth_path, "\n".join(lines) + "\n", mode=0o600, owner=user)
    ctx.host.write(f"{ssh}/config", SSH_CONFIG, mode=0o600, owner=user)


def shared_home(ctx: Context) -> None:
    # Every node runs this at once; the first one to take the lock does the copying.
    with ctx.host.lock(f"{ctx.params.fsx_mount_point}/.provision/home.lock"):
        move_home(ctx)
        ssh_keys(ctx)

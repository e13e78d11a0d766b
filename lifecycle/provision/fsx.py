"""Mount FSx for Lustre where every node expects it, and prove it is writable."""

from __future__ import annotations

import os

from provision.apt import missing_packages
from provision.context import Context
from provision.host import StepError

MOUNT_OPTIONS = "noatime,flock"
# The Lustre client's kernel modules: an upgrade of this package pulls in a kernel the running
# client lacks, and FSx stops mounting after the next reboot. The reference holds it
# (awslabs/awsome-distributed-ai, 1.architectures/5.sagemaker-hyperpod/LifecycleScripts/
# base-config/hotfix/hold-lustre-client.sh).
LUSTRE_CLIENT_PACKAGE = "lustre-client-modules-aws"
FSTAB_OPTIONS = "defaults,noatime,flock,_netdev"


def lustre_source(ctx: Context) -> str:
    return f"{ctx.params.fsx_dns_name}@tcp:/{ctx.params.fsx_mountname}"


def mounted_source(ctx: Context, mount_point: str) -> tuple[str, str] | None:
    """(device, file system type) mounted at `mount_point` according to /proc/mounts, if any."""
    for line in (ctx.host.read("/proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == mount_point:
            return fields[0], fields[2]
    return None


def resolved_ips(ctx: Context, name: str) -> set[str]:
    """The IPv4 addresses `name` resolves to on this node (empty when it does not resolve)."""
    res = ctx.host.runner.run(["getent", "ahostsv4", name], check=False, quiet=True)
    return {line.split()[0] for line in res.stdout.splitlines() if line.split()} if res.ok else set()


def is_our_file_system(ctx: Context, device: str, fstype: str) -> bool:
    """Whether the mounted `device` is this cluster's FSx.

    The kernel shows a Lustre mount's source with the MGS's IP, `<IP>@tcp:/<mountname>`, not
    the DNS name it was mounted by (mount.lustre resolves the name; the MGS NID is an address).
    So the mount name must match, and the host be the DNS name or an address it resolves to.
    """
    host, sep, mountname = device.partition("@tcp:/")
    if fstype != "lustre" or not sep or mountname.rstrip("/") != ctx.params.fsx_mountname:
        return False
    return host == ctx.params.fsx_dns_name or host in resolved_ips(ctx, ctx.params.fsx_dns_name)


def ensure_fstab(ctx: Context) -> bool:
    """One fstab line for the mount point (replacing any other), so a reboot remounts it."""
    mp = ctx.params.fsx_mount_point
    want = f"{lustre_source(ctx)} {mp} lustre {FSTAB_OPTIONS} 0 0"
    lines = (ctx.host.read("/etc/fstab") or "").splitlines()
    kept = [ln for ln in lines if not (len(ln.split()) >= 2 and ln.split()[1] == mp and not ln.startswith("#"))]
    return ctx.host.write("/etc/fstab", "\n".join([*kept, want]) + "\n")


def write_test(ctx: Context) -> str | None:
    probe = ctx.host.path(f"{ctx.params.fsx_mount_point}/.provision-write-test.{os.uname().nodename}")
    try:
        probe.write_text("ok\n", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return f"write test on {ctx.params.fsx_mount_point} failed: {exc}"
    return None


def hold_lustre_client(ctx: Context) -> None:
    """`apt-mark hold` the Lustre client modules where the image has them, so unattended upgrades leave them."""
    run = ctx.host.runner.run
    if missing_packages(ctx.host.runner, [LUSTRE_CLIENT_PACKAGE]):
        print(f"{LUSTRE_CLIENT_PACKAGE} is not installed; nothing to hold", flush=True)
        return
    if LUSTRE_CLIENT_PACKAGE in run(["apt-mark", "showhold"], check=False, quiet=True).stdout.split():
        print(f"{LUSTRE_CLIENT_PACKAGE} already held", flush=True)
        return
    run(["apt-mark", "hold", LUSTRE_CLIENT_PACKAGE])


def mount_fsx(ctx: Context) -> None:
    run = ctx.host.runner.run
    hold_lustre_client(ctx)
    mp = ctx.params.fsx_mount_point
    source = lustre_source(ctx)
    ensure_fstab(ctx)
    if run(["mountpoint", "-q", str(ctx.host.path(mp))], check=False).ok:
        current = mounted_source(ctx, mp)
        if current is None or not is_our_file_system(ctx, *current):
            shown = f"{current[0]} ({current[1]})" if current else "an unknown device"
            raise StepError(f"{mp} is already a mount point of {shown}, not {source}")
        print(f"{source} already mounted on {mp} (the kernel shows {current[0]})", flush=True)
    else:
        ctx.host.mkdir(mp, 0o755)
        run(["modprobe", "lnet"])
        run(["modprobe", "lustre"])
        run(["lctl", "network", "up"])

        def attempt() -> str | None:
            res = run(["mount", "-t", "lustre", "-o", MOUNT_OPTIONS, source, str(ctx.host.path(mp))], check=False)
            if not res.ok:
                return f"mount exited {res.returncode}: {(res.stderr or res.stdout).strip()}"
            return write_test(ctx)

        ctx.host.retry(f"mounting {source} on {mp}", ctx.settings.mount_attempts, attempt)
        return
    reason = write_test(ctx)
    if reason:
        raise StepError(reason)

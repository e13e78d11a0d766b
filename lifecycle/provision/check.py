"""One node's health after provisioning: what cluster_check.sh collects from every node with srun."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from provision.config import Params
from provision.host import Host


@dataclass(frozen=True)
class NodeReport:
    fsx_mounted: bool
    home_on_fsx: bool
    slurmd_active: bool
    neuron_devices: int

    def failures(self, expect_neuron: bool) -> list[str]:
        out = []
        if not self.fsx_mounted:
            out.append("FSx not mounted")
        if not self.home_on_fsx:
            out.append("home not on FSx")
        if not self.slurmd_active:
            out.append("slurmd not active")
        if expect_neuron and self.neuron_devices == 0:
            out.append("no Neuron devices")
        return out


def inspect(host: Host, params: Params) -> NodeReport:
    mp = params.fsx_mount_point
    mounts = (host.read("/proc/mounts") or "").splitlines()
    mounted = any(len(f) >= 3 and f[1] == mp and f[2] == "lustre" for f in (ln.split() for ln in mounts))
    passwd = host.runner.run(["getent", "passwd", params.default_user], check=False, quiet=True)
    fields = passwd.stdout.strip().split(":")
    home_ok = len(fields) >= 6 and fields[5] == params.home_dir
    slurmd = host.runner.run(["systemctl", "is-active", "--quiet", "slurmd"], check=False, quiet=True).ok
    dev = host.path("/dev")
    devices = len(list(dev.glob("neuron[0-9]*"))) if dev.is_dir() else 0
    return NodeReport(mounted, home_ok, slurmd, devices)


def report_line(hostname: str, report: NodeReport, expect_neuron: bool) -> str:
    failures = report.failures(expect_neuron)
    return json.dumps({"host": hostname, **asdict(report), "ok": not failures, "failures": failures})

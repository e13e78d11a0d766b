"""Real daemons for the lifecycle tests: free ports, waiting, stopping by pid, munged, slurm.conf."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_munged(d: Path) -> Path:
    d.mkdir(mode=0o755)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = d / "munge.socket"
    subprocess.run(
        ["munged", "--force", f"--socket={sock}", f"--key-file={key}", f"--pid-file={d / 'munged.pid'}",
         f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}"],
        check=True, timeout=30,
    )
    wait_until("munged socket", sock.is_socket)
    return sock


def slurm_conf(work: Path, munge: Path, extra: str = "") -> Path:
    """A one-node cluster in `work`: this machine is the controller and the node trn1-node."""
    host = socket.gethostname()
    for d in ("etc", "state", "log", "spool"):
        (work / d).mkdir(exist_ok=True)
    (work / "log").chmod(0o777)  # slurmdbd drops to the slurm user before it writes its log
    conf = work / "etc/slurm.conf"
    conf.write_text(
        f"""ClusterName=lifecycletest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}
StateSaveLocation={work / 'state'}
SlurmctldPidFile={work / 'slurmctld.pid'}
SlurmctldLogFile={work / 'log/slurmctld.log'}
SlurmdSpoolDir={work / 'spool'}
SlurmdPidFile={work / 'slurmd.pid'}
SlurmdLogFile={work / 'log/slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SlurmdParameters=config_overrides
{extra}
NodeName=trn1-node NodeHostname={host} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN
PartitionName=trn1 Nodes=trn1-node Default=YES State=UP
"""
    )
    return conf


def slurm_cmd(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLURM_CONF": str(conf)}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60)

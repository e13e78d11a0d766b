"""The accounting files the controller step writes, run by Debian's real daemons.

A private MariaDB gets the step's SQL; slurmdbd (Slurm 22.05) runs on the generated
slurmdbd.conf and creates its tables there; slurmctld runs with a slurm.conf that
includes the generated accounting.conf, registers with slurmdbd and reports the
settings. Every daemon uses this test's directory, free ports and its own munge
socket, and is stopped by its pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from provision.accounting import accounting_conf, database_sql, slurmdbd_conf
from provision.host import Host
from provision.runner import RecordingRunner

DAEMONS = ("munged", "slurmctld", "scontrol", "sacctmgr", "slurmdbd", "mariadbd", "mariadb-install-db", "mysql")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in DAEMONS),
    reason="needs apt packages slurm-wlm, munge, slurmdbd and mariadb-server (make setup)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


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


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory the slurm user can reach too (pytest's own tmp is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="lifecycle-daemons-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def munge(work: Path) -> Iterator[Path]:
    d = work / "munge"
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
    try:
        wait_until("munged socket", sock.is_socket)
        yield sock
    finally:
        stop(d / "munged.pid")


@pytest.fixture
def mariadb(work: Path) -> Iterator[int]:
    """A MariaDB of this test's own, on a free TCP port; root logs in over its socket."""
    d = work / "mariadb"
    d.mkdir()
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={d / 'data'}", "--user=root", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    port = free_port()
    proc = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={d / 'data'}", f"--socket={d / 'mysql.sock'}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--pid-file={d / 'mariadb.pid'}", "--user=root", "--skip-log-bin",
         f"--log-error={d / 'error.log'}"],
    )
    try:
        wait_until("mariadb socket", (d / "mysql.sock").is_socket, timeout=60)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def mysql(work: Path, sql: str) -> None:
    """As the step runs it (`mysql --user=root`, SQL on stdin), against the private server."""
    sock = work / "mariadb/mysql.sock"
    subprocess.run(
        ["mysql", "--no-defaults", f"--socket={sock}", "--user=root"], input=sql, text=True, check=True, timeout=30
    )


def write_generated(etc: Path, name: str, content: str, mode: int) -> Path:
    """Through Host.write, as the controller step writes it (mode included)."""
    Host(etc, RecordingRunner()).write(f"/{name}", content, mode=mode)
    return etc / name


def slurm_cmd(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLURM_CONF": str(conf)}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=30)


def test_generated_accounting_runs_on_real_mariadb_slurmdbd_and_slurmctld(work: Path, munge: Path, mariadb: int):
    etc, state, logs = work / "etc", work / "state", work / "log"
    for d in (etc, state, logs):
        d.mkdir()
    logs.chmod(0o777)  # slurmdbd drops to SlurmUser (slurm) before it writes its log
    password = "0123456789abcdef0123456789abcdef"
    mysql(work, database_sql(password))

    dbd_port, ctld_port, slurmd_port = free_port(), free_port(), free_port()
    text = slurmdbd_conf(password, dbd_port, storage_host="127.0.0.1", storage_port=mariadb)
    # Only the daemon's own files move into the test directory; the rest is as generated.
    text = text.replace("LogFile=/var/log/slurm/slurmdbd.log", f"LogFile={logs / 'slurmdbd.log'}")
    text = text.replace("PidFile=/var/run/slurmdbd.pid", f"PidFile={logs / 'slurmdbd.pid'}")
    text = text.replace("AuthType=auth/munge\n", f"AuthType=auth/munge\nAuthInfo=socket={munge}\n")
    dbd_conf = write_generated(etc, "slurmdbd.conf", text, 0o600)
    slurm = pwd.getpwnam("slurm")
    os.chown(dbd_conf, slurm.pw_uid, slurm.pw_gid)
    accounting = write_generated(etc, "accounting.conf", accounting_conf("127.0.0.1", dbd_port), 0o644)
    host = socket.gethostname()
    conf = etc / "slurm.conf"
    conf.write_text(
        f"""ClusterName=lifecycletest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}
StateSaveLocation={state}
SlurmctldPidFile={work / 'slurmctld.pid'}
SlurmctldLogFile={logs / 'slurmctld.log'}
SlurmdSpoolDir={work / 'spool'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
# This test's munged, for the connection to slurmdbd too (HyperPod uses the default socket).
AccountingStoragePass={munge}
Include {accounting}
NodeName=trn1-node NodeHostname={host} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN
PartitionName=trn1 Nodes=trn1-node Default=YES State=UP
"""
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmdbd"], env=env, check=True, timeout=30)
    try:
        wait_until(
            "slurmdbd listening",
            lambda: socket.socket().connect_ex(("127.0.0.1", dbd_port)) == 0,
            timeout=60,
        )
        subprocess.run(["slurmctld", "-f", str(conf), "-i"], env=env, check=True, timeout=30)
        try:
            wait_until("scontrol ping", lambda: "is UP" in slurm_cmd(conf, "scontrol", "ping").stdout)
            shown = slurm_cmd(conf, "scontrol", "show", "config").stdout
            settings = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in shown.splitlines()) if v}
            assert settings["AccountingStorageType"] == "accounting_storage/slurmdbd"
            assert settings["AccountingStorageHost"] == "127.0.0.1"
            assert settings["AccountingStoragePort"] == str(dbd_port)
            assert settings["JobAcctGatherType"] == "jobacct_gather/linux"
            assert settings["JobAcctGatherFrequency"].startswith("30")
            wait_until(
                "the cluster registered in slurmdbd",
                lambda: "lifecycletest" in slurm_cmd(conf, "sacctmgr", "-n", "-P", "show", "cluster", "format=cluster").stdout,
            )
        finally:
            stop(work / "slurmctld.pid")
    finally:
        stop(logs / "slurmdbd.pid")

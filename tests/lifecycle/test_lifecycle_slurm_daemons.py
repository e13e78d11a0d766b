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
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lifecycle_daemons import free_port, port_open, slurm_cmd, slurm_conf, stop, wait_until
from provision.accounting import accounting_conf, database_sql, slurmdbd_conf
from provision.host import Host
from provision.node import primary_ip
from provision.runner import RecordingRunner

DAEMONS = ("munged", "slurmctld", "scontrol", "sacctmgr", "slurmdbd", "mariadbd", "mariadb-install-db", "mysql")
pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def daemons_installed() -> None:
    """Missing daemons fail the test rather than skip it: `make test` installs them first."""
    missing = [t for t in DAEMONS if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make setup` (apt slurm-wlm, munge, slurmdbd, mariadb-server)")


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
        wait_until("mariadb socket", (d / "mysql.sock").is_socket, timeout_s=60)
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


def test_generated_accounting_runs_on_real_mariadb_slurmdbd_and_slurmctld(work: Path, munge: Path, mariadb: int):
    slurm_conf(work, munge)  # lays out the directories
    etc, logs = work / "etc", work / "log"
    password = "0123456789abcdef0123456789abcdef"
    mysql(work, database_sql(password))

    dbd_port = free_port()
    text = slurmdbd_conf(password, dbd_port, storage_host="127.0.0.1", storage_port=mariadb)
    # Only the daemon's own files move into the test directory; the rest is as generated.
    text = text.replace("LogFile=/var/log/slurm/slurmdbd.log", f"LogFile={logs / 'slurmdbd.log'}")
    text = text.replace("PidFile=/var/run/slurmdbd.pid", f"PidFile={logs / 'slurmdbd.pid'}")
    text = text.replace("AuthType=auth/munge\n", f"AuthType=auth/munge\nAuthInfo=socket={munge}\n")
    dbd_conf = write_generated(etc, "slurmdbd.conf", text, 0o600)
    slurm = pwd.getpwnam("slurm")
    os.chown(dbd_conf, slurm.pw_uid, slurm.pw_gid)
    # The controller's VPC address, not loopback: slurmdbd (DbdHost=localhost) must answer on it.
    controller_ip = primary_ip()
    accounting = write_generated(etc, "accounting.conf", accounting_conf(controller_ip, dbd_port), 0o644)
    # This test's munged for the connection to slurmdbd too (HyperPod uses the default socket).
    conf = slurm_conf(work, munge, extra=f"AccountingStoragePass={munge}\nInclude {accounting}")

    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmdbd"], env=env, check=True, timeout=30)
    try:
        wait_until("slurmdbd listening", lambda: port_open(dbd_port), timeout_s=60)
        subprocess.run(["slurmctld", "-f", str(conf), "-i"], env=env, check=True, timeout=30)
        try:
            wait_until("scontrol ping", lambda: "is UP" in slurm_cmd(conf, "scontrol", "ping").stdout)
            shown = slurm_cmd(conf, "scontrol", "show", "config").stdout
            settings = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in shown.splitlines()) if v}
            assert settings["AccountingStorageType"] == "accounting_storage/slurmdbd"
            assert settings["AccountingStorageHost"] == controller_ip
            assert settings["AccountingStoragePort"] == str(dbd_port)
            assert settings["JobAcctGatherType"] == "jobacct_gather/linux"
            assert settings["JobAcctGatherFrequency"].startswith("30")
            show_cluster = ("sacctmgr", "--noheader", "--parsable2", "show", "cluster", "format=cluster")
            wait_until(
                "the cluster registered in slurmdbd",
                lambda: "lifecycletest" in slurm_cmd(conf, *show_cluster).stdout.split(),
            )
        finally:
            stop(work / "slurmctld.pid")
    finally:
        stop(logs / "slurmdbd.pid")

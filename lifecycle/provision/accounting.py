"""Slurm accounting on the controller: MariaDB, slurmdbd, and the slurm.conf settings that use them.

HyperPod's slurm.conf includes accounting.conf (empty by default); we own that file
and slurmdbd.conf. The database password is generated once and then read back from
slurmdbd.conf, so a second run changes nothing.
"""

from __future__ import annotations

import secrets

from provision.apt import ensure_packages
from provision.context import SLURM_ETC, Context
from provision.host import StepError
from provision.slurm import start

SLURMDBD_CONF = f"{SLURM_ETC}/slurmdbd.conf"
# The node image's own slurmdbd.conf, with ${SLURM_DB_USER} and ${SLURM_DB_PASSWORD} placeholders: the
# reference renders it with envsubst (awslabs/awsome-distributed-ai, 1.architectures/5.sagemaker-hyperpod/
# LifecycleScripts/base-config/setup_mariadb_accounting.sh:86).
SLURMDBD_TEMPLATE = f"{SLURMDBD_CONF}.template"
ACCOUNTING_CONF = f"{SLURM_ETC}/accounting.conf"
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"


def accounting_conf(dbd_host: str, dbd_port: int) -> str:
    return (
        "# Written by the HyperPod lifecycle scripts: accounting through slurmdbd on the controller.\n"
        "AccountingStorageType=accounting_storage/slurmdbd\n"
        f"AccountingStorageHost={dbd_host}\n"
        f"AccountingStoragePort={dbd_port}\n"
        "JobAcctGatherType=jobacct_gather/linux\n"
        "JobAcctGatherFrequency=30\n"
    )


def slurmdbd_conf(password: str, dbd_port: int, storage_host: str = "localhost", storage_port: int = 3306) -> str:
    return (
        "# Written by the HyperPod lifecycle scripts.\n"
        "AuthType=auth/munge\n"
        "DbdHost=localhost\n"
        f"DbdPort={dbd_port}\n"
        "SlurmUser=slurm\n"
        "LogFile=/var/log/slurm/slurmdbd.log\n"
        "PidFile=/var/run/slurmdbd.pid\n"
        "StorageType=accounting_storage/mysql\n"
        f"StorageHost={storage_host}\n"
        f"StoragePort={storage_port}\n"
        f"StorageUser={DB_USER}\n"
        f"StoragePass={password}\n"
        f"StorageLoc={DB_NAME}\n"
    )


# Settings the rest of the setup depends on: where slurmctld and MariaDB are, and how to log in.
_WIRING = frozenset(k.lower() for k in ("AuthType", "DbdHost", "DbdPort", "SlurmUser", "StorageType", "StorageHost",
                                        "StoragePort", "StorageUser", "StoragePass", "StorageLoc"))


def from_template(template: str, ours: str, password: str) -> str:
    """The image's template with its placeholders filled and our settings in place of its own.

    What the template sets that the wiring does not depend on (archiving, purge times, log
    and pid files) is kept; the database, port and authentication are ours.
    """
    text = template.replace("${SLURM_DB_USER}", DB_USER).replace("$SLURM_DB_USER", DB_USER)
    text = text.replace("${SLURM_DB_PASSWORD}", password).replace("$SLURM_DB_PASSWORD", password)

    def key(line: str) -> str:
        return line.split("=", 1)[0].strip().lower() if "=" in line and not line.lstrip().startswith("#") else ""

    image_keys = {key(line) for line in text.splitlines()} - {""}
    settings = [line for line in ours.splitlines() if key(line) in _WIRING or (key(line) and key(line) not in image_keys)]
    forced = {key(line) for line in settings}
    kept = [line for line in text.splitlines() if key(line) not in forced]
    header = "# Written by the HyperPod lifecycle scripts from the image's slurmdbd.conf.template.\n"
    return header + "\n".join([*kept, *settings]) + "\n"


def existing_password(ctx: Context) -> str | None:
    for line in (ctx.host.read(SLURMDBD_CONF) or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "StoragePass" and value.strip():
            return value.strip()
    return None


def database_sql(password: str) -> str:
    # Idempotent statements; the password only travels on stdin, never in argv or the log.
    return (
        f"CREATE DATABASE IF NOT EXISTS {DB_NAME};\n"
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"ALTER USER '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost';\n"
        "FLUSH PRIVILEGES;\n"
    )


def ensure_include(ctx: Context) -> bool:
    """slurm.conf must include accounting.conf; HyperPod's does, an older one may not."""
    path = f"{SLURM_ETC}/slurm.conf"
    text = ctx.host.read(path)
    if text is None:
        raise StepError(f"{path} is missing")
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].lower() == "include" and words[1].endswith("accounting.conf"):
            return False
    return ctx.host.write(path, text.rstrip("\n") + f"\nInclude {ACCOUNTING_CONF}\n")


def slurm_accounting(ctx: Context) -> None:
    run = ctx.host.runner.run
    ensure_packages(ctx.host.runner, ["mariadb-server"])
    start(ctx, "mariadb")
    password = existing_password(ctx) or secrets.token_hex(16)
    dbd_conf = slurmdbd_conf(password, ctx.settings.dbd_port)
    template = ctx.host.read(SLURMDBD_TEMPLATE)
    if template is not None:
        dbd_conf = from_template(template, dbd_conf, password)
    if ctx.host.read(SLURMDBD_CONF) != dbd_conf:
        run(["mysql", "--user=root"], stdin=database_sql(password))
    dbd_changed = ctx.host.write(SLURMDBD_CONF, dbd_conf, mode=0o600, owner="slurm")
    ctx.host.mkdir("/var/log/slurm", 0o755, owner="slurm")
    start(ctx, "slurmdbd", changed=dbd_changed)
    conf_changed = ctx.host.write(
        ACCOUNTING_CONF, accounting_conf(ctx.node.controller_ips[0], ctx.settings.dbd_port)
    )
    if ensure_include(ctx) or conf_changed:
        ctx.changed.add("slurm_conf")

"""Everything a step needs, passed as one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provision.config import Params
from provision.host import Host
from provision.node import Node

SLURM_ETC = "/opt/slurm/etc"
INSTALL_DIR = "/opt/hyperpod-lifecycle"


@dataclass(frozen=True)
class Settings:
    """Knobs of the run itself, not of the cluster (timeouts, the bundle's location)."""

    bundle_dir: Path
    slurm_conf_timeout: float = 600.0
    mount_attempts: int = 6
    dbd_port: int = 6819


@dataclass
class Context:
    params: Params
    node: Node
    host: Host
    settings: Settings
    # Facts steps pass on: e.g. "slurm_conf" when a Slurm config file changed.
    changed: set[str] = field(default_factory=set)


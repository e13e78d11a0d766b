"""Which role this node plays, worked out from its IP and the two input files."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import Enum

from provision.config import ConfigError, Params, ResourceConfig, WorkerGroup


class Role(str, Enum):
    CONTROLLER = "controller"
    LOGIN = "login"
    WORKER = "worker"


@dataclass(frozen=True)
class Node:
    role: Role
    group: str
    name: str
    ip: str
    controller_ips: list[str]
    worker_group: WorkerGroup | None = None

    @property
    def is_trainium(self) -> bool:
        return self.worker_group is not None and self.worker_group.is_trainium


def primary_ip() -> str:
    """The address other nodes reach this one on (the VPC interface's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks the route
        return str(s.getsockname()[0])


def resolve_node(params: Params, resources: ResourceConfig, ip: str) -> Node:
    controller = resources.group(params.controller_group)
    if controller is None or not controller.instances:
        raise ConfigError(
            f"controller_group '{params.controller_group}' has no instances in the resource config "
            f"(groups: {', '.join(g.name for g in resources.groups) or 'none'})"
        )
    controller_ips = [i.ip for i in controller.instances]
    found = resources.find(ip)
    if found is None:
        raise ConfigError(
            f"this node's IP {ip} is in no instance group of the resource config "
            f"(groups: {', '.join(g.name for g in resources.groups) or 'none'})"
        )
    group, instance = found
    if group.name == params.controller_group:
        role, worker = Role.CONTROLLER, None
    elif params.login_group is not None and group.name == params.login_group:
        role, worker = Role.LOGIN, None
    else:
        worker = params.worker_group(group.name)
        if worker is None:
            raise ConfigError(
                f"this node's instance group '{group.name}' matches none of the provisioning parameters' "
                f"controller_group, login_group or worker_groups"
            )
        role = Role.WORKER
    return Node(role, group.name, instance.name, ip, controller_ips, worker)

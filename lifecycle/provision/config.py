"""The two inputs of a node's bootstrap, read once and turned into frozen dataclasses.

provisioning_parameters.json comes from the CDK stack (docs/contracts.md);
resource_config.json comes from HyperPod itself. A bad value raises ConfigError
naming the file and the key, so the operator knows what to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Userspace Neuron stack per optimum-neuron release: the pins that release was
# tested with. The host driver and runtime are the AMI's business.
NEURON_PINS: dict[str, tuple[str, ...]] = {
    "0.4.5": (
        "neuronx-cc==2.21.33363.0",
        "torch-neuronx==2.8.0.2.10.16998",
        "torch==2.8.0.*",
        "neuronx_distributed==0.15.22404",
        "libneuronxla==2.2.12677.0",
        "transformers~=4.57.1",
        "trl==0.24.0",
        "peft==0.17.0",
        "accelerate==1.8.1",
        # optimum-neuron's neuronx extra pins numpy<=1.26.4; pyarrow 26 refuses NumPy 1.x at
        # `import datasets` ("pyarrow requires NumPy 2.0 or newer"), 25.0.1 imports (make check-neuron)
        "numpy<=1.26.4",
        "pyarrow<26",
    ),
}
NEURON_PIP_INDEX = "https://pip.repos.neuron.amazonaws.com"

_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_GROUP_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


class ConfigError(ValueError):
    """A missing or bad value in an input file; the message names the file and key."""


@dataclass(frozen=True)
class WorkerGroup:
    instance_group_name: str
    partition_name: str
    instance_type: str

    @property
    def is_trainium(self) -> bool:
        return self.instance_type.startswith(("ml.trn1.", "ml.trn1n.", "ml.trn2."))


@dataclass(frozen=True)
class Params:
    """provisioning_parameters.json (docs/contracts.md)."""

    controller_group: str
    login_group: str | None
    worker_groups: tuple[WorkerGroup, ...]
    fsx_dns_name: str
    fsx_mountname: str
    fsx_mount_point: str
    default_user: str
    slurm_accounting: bool
    neuron_venv: str
    optimum_neuron_version: str
    neuron_compile_cache: str
    region: str
    project_dir: str

    @property
    def home_dir(self) -> str:
        return f"{self.fsx_mount_point}/{self.default_user}"

    @property
    def neuron_pins(self) -> tuple[str, ...]:
        return NEURON_PINS[self.optimum_neuron_version]

    def worker_group(self, name: str) -> WorkerGroup | None:
        for group in self.worker_groups:
            if group.instance_group_name == name:
                return group
        return None


@dataclass(frozen=True)
class Instance:
    name: str
    ip: str


@dataclass(frozen=True)
class InstanceGroup:
    name: str
    instance_type: str
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class ResourceConfig:
    """HyperPod's resource_config.json: every group's instances and their IPs."""

    groups: tuple[InstanceGroup, ...]

    def group(self, name: str) -> InstanceGroup | None:
        for group in self.groups:
            if group.name == name:
                return group
        return None

    def find(self, ip: str) -> tuple[InstanceGroup, Instance] | None:
        for group in self.groups:
            for instance in group.instances:
                if instance.ip == ip:
                    return group, instance
        return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


class _Reader:
    """Typed access to one JSON object; every error names the file and key."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' {why}")

    def text(self, key: str, pattern: re.Pattern[str] | None = None) -> str:
        if key not in self.data:
            raise self.fail(key, "is missing")
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"has a bad value {value!r}")
        return value

    def opt_text(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        if self.data.get(key) is None:
            return None
        return self.text(key, pattern)

    def abs_path(self, key: str, default: str | None = None) -> str:
        if default is not None and self.data.get(key) is None:
            return default
        value = self.text(key)
        if not value.startswith("/") or "\n" in value or " " in value:
            raise self.fail(key, f"must be an absolute path without spaces, got {value!r}")
        return value.rstrip("/") or "/"

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, got {value!r}")
        return value


def load_params(path: Path) -> Params:
    r = _Reader(_load_json(path), str(path))
    manager = r.text("workload_manager")
    if manager != "slurm":
        raise r.fail("workload_manager", f"must be 'slurm', got {manager!r}")
    workers = []
    for i, item in enumerate(r.items("worker_groups")):
        if not isinstance(item, dict):
            raise r.fail(f"worker_groups[{i}]", f"must be an object, got {item!r}")
        w = _Reader(item, f"{path}: worker_groups[{i}]")
        workers.append(
            WorkerGroup(
                instance_group_name=w.text("instance_group_name", _GROUP_RE),
                partition_name=w.text("partition_name"),
                instance_type=w.text("instance_type"),
            )
        )
    if not workers:
        raise r.fail("worker_groups", "must name at least one worker group")
    version = r.text("optimum_neuron_version")
    if version not in NEURON_PINS:
        raise r.fail(
            "optimum_neuron_version",
            f"is {version!r}; pinned Neuron stacks exist for {', '.join(sorted(NEURON_PINS))}",
        )
    fsx_mount_point = r.abs_path("fsx_mount_point")
    params = Params(
        controller_group=r.text("controller_group", _GROUP_RE),
        login_group=r.opt_text("login_group", _GROUP_RE),
        worker_groups=tuple(workers),
        fsx_dns_name=r.text("fsx_dns_name"),
        fsx_mountname=r.text("fsx_mountname"),
        fsx_mount_point=fsx_mount_point,
        default_user=r.text("default_user", _USER_RE),
        slurm_accounting=r.flag("slurm_accounting", default=True),
        neuron_venv=r.abs_path("neuron_venv"),
        optimum_neuron_version=version,
        neuron_compile_cache=r.abs_path("neuron_compile_cache"),
        region=r.text("region"),
        project_dir=r.abs_path("project_dir", default=f"{fsx_mount_point}/src/hyperpod-trn-lora"),
    )
    names = [params.controller_group, params.login_group] + [w.instance_group_name for w in workers]
    seen = [n for n in names if n is not None]
    if len(seen) != len(set(seen)):
        raise ConfigError(f"{path}: an instance group name is used twice: {seen}")
    return params


def load_resource_config(path: Path) -> ResourceConfig:
    r = _Reader(_load_json(path), str(path))
    groups = []
    for i, item in enumerate(r.items("InstanceGroups")):
        if not isinstance(item, dict):
            raise r.fail(f"InstanceGroups[{i}]", f"must be an object, got {item!r}")
        g = _Reader(item, f"{path}: InstanceGroups[{i}]")
        instances = []
        for j, inst in enumerate(g.items("Instances")):
            if not isinstance(inst, dict):
                raise g.fail(f"Instances[{j}]", f"must be an object, got {inst!r}")
            n = _Reader(inst, f"{path}: InstanceGroups[{i}].Instances[{j}]")
            instances.append(Instance(name=n.text("InstanceName"), ip=n.text("CustomerIpAddress")))
        groups.append(
            InstanceGroup(
                name=g.text("Name"),
                instance_type=str(item.get("InstanceType", "")),
                instances=tuple(instances),
            )
        )
    return ResourceConfig(groups=tuple(groups))

"""The instance groups and the provisioning_parameters.json the lifecycle scripts
read (shape fixed in docs/contracts.md). Both come from one config, so the group names
the nodes see are the cluster's InstanceGroupNames by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import CONTROLLER_GROUP, LOGIN_GROUP, ClusterConfig

__all__ = ["CONTROLLER_GROUP", "LOGIN_GROUP", "InstanceGroup", "instance_groups", "provisioning_parameters"]

FSX_MOUNT_POINT = "/fsx"
DEFAULT_USER = "ubuntu"
OPTIMUM_NEURON_VERSION = "0.4.5"
NEURON_VENV = f"{FSX_MOUNT_POINT}/envs/neuron"
NEURON_COMPILE_CACHE = f"{FSX_MOUNT_POINT}/neuron-cache"
PROJECT_DIR = f"{FSX_MOUNT_POINT}/src/hyperpod-trn-lora"


@dataclass(frozen=True, kw_only=True)
class InstanceGroup:
    name: str
    instance_type: str
    count: int
    volume_gib: int
    # Workers run one Neuron process per core; the head and login nodes keep both threads.
    threads_per_core: int
    training_plan_arn: str | None = None
    deep_health_checks: tuple[str, ...] = ()


def instance_groups(config: ClusterConfig) -> list[InstanceGroup]:
    """Controller first, then the optional login group, then each worker group."""
    groups = [
        InstanceGroup(
            name=CONTROLLER_GROUP,
            instance_type=config.controller_instance_type,
            count=1,
            volume_gib=config.controller_volume_gib,
            threads_per_core=2,
        )
    ]
    if config.login_instance_type:
        groups.append(
            InstanceGroup(
                name=LOGIN_GROUP,
                instance_type=config.login_instance_type,
                count=config.login_count,
                volume_gib=config.controller_volume_gib,
                threads_per_core=2,
            )
        )
    groups.extend(
        InstanceGroup(
            name=worker.name,
            instance_type=worker.instance_type,
            count=worker.count,
            volume_gib=config.worker_volume_gib,
            threads_per_core=1,
            training_plan_arn=worker.training_plan_arn,
            deep_health_checks=config.deep_health_checks,
        )
        for worker in config.workers
    )
    return groups


def provisioning_parameters(
    config: ClusterConfig, *, fsx_dns_name: str, fsx_mount_name: str, hf_token_secret_arn: str
) -> dict[str, Any]:
    """The JSON document every node's on_create.sh reads; values may be CDK tokens,
    which BucketDeployment resolves at deploy time."""
    return {
        "version": "1.0.0",
        "workload_manager": "slurm",
        "controller_group": CONTROLLER_GROUP,
        "login_group": LOGIN_GROUP if config.login_instance_type else None,
        "worker_groups": [
            {
                "instance_group_name": worker.name,
                "partition_name": worker.partition,
                "instance_type": worker.instance_type,
            }
            for worker in config.workers
        ],
        "fsx_dns_name": fsx_dns_name,
        "fsx_mountname": fsx_mount_name,
        "fsx_mount_point": FSX_MOUNT_POINT,
        "default_user": DEFAULT_USER,
        "slurm_accounting": True,
        "neuron_venv": NEURON_VENV,
        "optimum_neuron_version": OPTIMUM_NEURON_VERSION,
        "neuron_compile_cache": NEURON_COMPILE_CACHE,
        "project_dir": PROJECT_DIR,
        "region": config.region,
        "hf_token_secret_arn": hf_token_secret_arn,
    }

"""The two input files: read once into frozen dataclasses; a bad value names its key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from lifecycle_fakes import CONTROLLER_IP, LOGIN_IP, PARAMS, RESOURCES, WORKER_IP
from provision.config import ConfigError, load_params, load_resource_config
from provision.node import Role, resolve_node


def params_with(tmp_path: Path, **changes: Any) -> Path:
    data = json.loads(PARAMS.read_text())
    for key, value in changes.items():
        if value is dataclasses.MISSING:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "provisioning_parameters.json"
    path.write_text(json.dumps(data))
    return path


def test_contract_example_loads():
    p = load_params(PARAMS)
    assert p.controller_group == "controller-machine"
    assert p.worker_groups[0].partition_name == "trn1"
    assert p.worker_groups[0].is_trainium
    assert p.home_dir == "/fsx/ubuntu"
    assert p.project_dir == "/fsx/src/hyperpod-trn-lora"


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_params(PARAMS).default_user = "root"  # type: ignore[misc]


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nowhere.json: file not found"):
        load_params(tmp_path / "nowhere.json")


def test_malformed_json_is_reported(tmp_path: Path):
    path = tmp_path / "provisioning_parameters.json"
    path.write_text('{"workload_manager": "slurm",')
    with pytest.raises(ConfigError, match=r"provisioning_parameters.json: not valid JSON"):
        load_params(path)


def test_missing_key_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"key 'fsx_dns_name' is missing"):
        load_params(params_with(tmp_path, fsx_dns_name=dataclasses.MISSING))


def test_accounting_flag_must_be_a_json_boolean(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"key 'slurm_accounting' must be true or false, got 'false'"):
        load_params(params_with(tmp_path, slurm_accounting="false"))


def test_accounting_is_on_by_default(tmp_path: Path):
    assert load_params(params_with(tmp_path, slurm_accounting=dataclasses.MISSING)).slurm_accounting


def test_optimum_neuron_version_without_pins_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"key 'optimum_neuron_version' is '0.5.0'; pinned Neuron stacks exist for 0.4.5"):
        load_params(params_with(tmp_path, optimum_neuron_version="0.5.0"))


def test_relative_paths_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"key 'neuron_venv' must be an absolute path"):
        load_params(params_with(tmp_path, neuron_venv="envs/neuron"))


def test_bad_user_name_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"key 'default_user' has a bad value 'Ubuntu User'"):
        load_params(params_with(tmp_path, default_user="Ubuntu User"))


def test_worker_group_entry_errors_name_the_entry(tmp_path: Path):
    path = params_with(tmp_path, worker_groups=[{"instance_group_name": "worker-group-1", "partition_name": "trn1"}])
    with pytest.raises(ConfigError, match=r"worker_groups\[0\]: key 'instance_type' is missing"):
        load_params(path)


def test_resource_config_lists_groups_and_ips():
    rc = load_resource_config(RESOURCES)
    assert [g.name for g in rc.groups] == ["controller-machine", "login-group", "worker-group-1"]
    assert [i.ip for i in rc.groups[2].instances] == ["10.1.1.31", "10.1.1.32"]


def test_resource_config_without_instance_groups_is_an_error(tmp_path: Path):
    path = tmp_path / "resource_config.json"
    path.write_text('{"ClusterConfig": {}}')
    with pytest.raises(ConfigError, match=r"key 'InstanceGroups' must be a list"):
        load_resource_config(path)


@pytest.mark.parametrize(
    ("ip", "role"), [(CONTROLLER_IP, Role.CONTROLLER), (LOGIN_IP, Role.LOGIN), (WORKER_IP, Role.WORKER)]
)
def test_role_follows_the_instance_group_of_the_node_ip(ip: str, role: Role):
    node = resolve_node(load_params(PARAMS), load_resource_config(RESOURCES), ip)
    assert node.role is role
    assert node.controller_ips == [CONTROLLER_IP]


def test_ip_in_no_group_is_an_error():
    with pytest.raises(ConfigError, match=r"this node's IP 10.9.9.9 is in no instance group"):
        resolve_node(load_params(PARAMS), load_resource_config(RESOURCES), "10.9.9.9")


def test_group_unknown_to_the_parameters_is_an_error(tmp_path: Path):
    params = load_params(params_with(tmp_path, login_group=None))
    with pytest.raises(ConfigError, match=r"instance group 'login-group' matches none of"):
        resolve_node(params, load_resource_config(RESOURCES), LOGIN_IP)


def test_controller_group_missing_from_the_resource_config_is_an_error(tmp_path: Path):
    params = load_params(params_with(tmp_path, controller_group="head-group"))
    with pytest.raises(ConfigError, match=r"controller_group 'head-group' has no instances"):
        resolve_node(params, load_resource_config(RESOURCES), WORKER_IP)

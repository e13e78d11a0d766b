"""`hpctl ssh`: the exact `aws ssm start-session` it execs, and the ~/.ssh/config entry it writes."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from hpctl_world import REGION, Cli, World

from hpctl.aws import Aws
from hpctl.runtime import Runtime


def _node(moto_cluster: Any, group: str) -> str:
    return next(i for i, n in moto_cluster.nodes.items() if n.instance_group_name == group)


def _target(world: World, group: str, instance_id: str) -> str:
    return f"sagemaker-cluster:{world.cluster_arn.rsplit('/', 1)[1]}_{group}-{instance_id}"


@pytest.fixture
def ssm(world: World, make_cli: Callable[[Aws], Cli]) -> Iterator[tuple[Cli, Stubber]]:
    """A Cli whose SSM client is stubbed (moto has no StartSession); the rest is moto."""
    aws = Aws(world.session)
    stubber = Stubber(aws.client("ssm"))
    with stubber:
        yield make_cli(aws), stubber
    stubber.assert_no_pending_responses()


def _expect_probe(stubber: Stubber, target: str, document: str | None) -> None:
    params = {"Target": target, **({"DocumentName": document} if document else {})}
    stubber.add_response(
        "start_session", {"SessionId": "probe-1", "TokenValue": "t", "StreamUrl": "wss://x"}, params
    )
    stubber.add_response("terminate_session", {"SessionId": "probe-1"}, {"SessionId": "probe-1"})


def test_ssh_execs_start_session_on_the_controller_as_the_default_user(
    world: World, moto_cluster: Any, ssm: tuple[Cli, Stubber]
) -> None:
    cli, stubber = ssm
    controller = world.outputs["ControllerGroupName"]
    target = _target(world, controller, _node(moto_cluster, controller))
    run_as = world.outputs["SsmRunAsDocumentName"]
    _expect_probe(stubber, target, run_as)
    result = cli("ssh")
    assert result.exit_code == 0, result.output
    assert cli.execs == [
        ["aws", "ssm", "start-session", "--target", target, "--document-name", run_as, "--region", REGION]
    ]


def test_the_target_is_the_stacks_ssm_prefix_plus_the_instance_id(
    world: World, moto_cluster: Any, cli: Cli
) -> None:
    controller = world.outputs["ControllerGroupName"]
    instance = _node(moto_cluster, controller)
    cli("ssh", "--no-check")
    assert cli.execs[0][4] == world.outputs["SsmTargetPrefix"] + instance


def test_ssh_to_a_named_worker_instance(world: World, moto_cluster: Any, cli: Cli) -> None:
    worker_group = next(
        g["InstanceGroupName"] for g in moto_cluster.instance_groups if "trn1" in g["InstanceType"]
    )
    worker = sorted(i for i, n in moto_cluster.nodes.items() if n.instance_group_name == worker_group)[-1]
    result = cli("ssh", "--no-check", "--instance", worker)
    assert result.exit_code == 0, result.output
    assert cli.execs[0][4] == _target(world, worker_group, worker)


def test_a_node_ssm_cannot_reach_is_one_line_and_nothing_is_execed(
    world: World, moto_cluster: Any, ssm: tuple[Cli, Stubber]
) -> None:
    cli, stubber = ssm
    stubber.add_client_error(
        "start_session", service_error_code="TargetNotConnected", service_message="i-0abc is not connected."
    )
    result = cli("ssh")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: TargetNotConnected: i-0abc is not connected. — the node is not connected to SSM: wait until "
        "`hpctl status` shows it Running, and check its subnet can reach SSM (NAT gateway or VPC endpoints)"
    ]
    assert cli.execs == []


def test_a_group_without_running_nodes_says_so(moto_cluster: Any, cli: Cli, world: World) -> None:
    controller = world.outputs["ControllerGroupName"]
    for node in moto_cluster.nodes.values():
        if node.instance_group_name == controller:
            node.status = "Pending"
    result = cli("ssh", "--no-check")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: no Running node in group {controller} (")
    assert cli.execs == []


def test_missing_session_manager_plugin_is_named_with_where_to_get_it_before_any_aws_call(cli: Cli) -> None:
    connected: list[str | None] = []
    runtime = Runtime(
        connect=lambda region, profile: connected.append(region) or cli.aws,
        exec_argv=cli.execs.append,
        which=lambda tool: None if tool == "session-manager-plugin" else "/usr/bin/aws",
    )
    result = cli("ssh", runtime=runtime)
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: session-manager-plugin is not on PATH: install the Session Manager plugin"
    )
    assert cli.execs == [] and connected == []


def test_the_named_profile_is_passed_on_to_the_aws_cli(
    world: World, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"[profile lab]\nregion = {REGION}\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    runtime = Runtime(exec_argv=cli.execs.append, which=lambda tool: f"/usr/bin/{tool}")
    result = cli("--profile", "lab", "ssh", "--no-check", runtime=runtime)
    assert result.exit_code == 0, result.output
    assert cli.execs[0][-4:] == ["--region", REGION, "--profile", "lab"]


def _config_entry(world: World, moto_cluster: Any, path: Path, *args: str) -> list[str]:
    cli = Cli(session=world.session, execs=[], aws=Aws(world.session))
    result = cli("ssh", "--print-config", "--ssh-config", str(path), *args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_print_config_writes_a_host_with_the_ssm_proxy_command(
    world: World, moto_cluster: Any, tmp_path: Path
) -> None:
    path = tmp_path / "ssh" / "config"
    lines = _config_entry(world, moto_cluster, path)
    controller = world.outputs["ControllerGroupName"]
    target = _target(world, controller, _node(moto_cluster, controller))
    assert lines[0] == f"wrote Host {world.cluster_name} to {path}; connect with: ssh {world.cluster_name}"
    text = path.read_text()
    assert f"Host {world.cluster_name}\n    User ubuntu\n" in text
    assert (
        f"    ProxyCommand aws ssm start-session --target {target} --document-name AWS-StartSSHSession "
        f"--parameters portNumber=%p --region {REGION}\n"
    ) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config"]  # no temp file left behind


def test_print_config_again_replaces_its_entry_and_keeps_the_rest(
    world: World, moto_cluster: Any, tmp_path: Path
) -> None:
    path = tmp_path / "config"
    path.write_text("Host bastion\n    HostName 192.0.2.1\n")
    _config_entry(world, moto_cluster, path)
    _config_entry(world, moto_cluster, path, "--user", "admin")
    text = path.read_text()
    assert text.startswith("Host bastion\n    HostName 192.0.2.1\n")
    assert text.count(f"Host {world.cluster_name}\n") == 1
    assert "User admin" in text and "User ubuntu" not in text


def test_print_config_refuses_to_shadow_a_hand_written_host(
    world: World, moto_cluster: Any, tmp_path: Path
) -> None:
    path = tmp_path / "config"
    path.write_text(f"Host {world.cluster_name}\n    HostName 192.0.2.1\n")
    cli = Cli(session=world.session, execs=[], aws=Aws(world.session))
    result = cli("ssh", "--print-config", "--ssh-config", str(path))
    assert result.exit_code == 2
    assert result.output.startswith(f"error: your ssh config already has a 'Host {world.cluster_name}' entry")
    assert path.read_text() == f"Host {world.cluster_name}\n    HostName 192.0.2.1\n"


def test_by_cluster_name_the_shell_starts_without_a_run_as_document(
    world: World, moto_cluster: Any, cli: Cli
) -> None:
    result = cli("ssh", "--cluster", world.cluster_name, "--no-check")
    assert result.exit_code == 0, result.output
    controller = world.outputs["ControllerGroupName"]
    target = _target(world, controller, _node(moto_cluster, controller))
    assert cli.execs == [["aws", "ssm", "start-session", "--target", target, "--region", REGION]]


def test_print_config_writes_through_a_symlinked_config(world: World, moto_cluster: Any, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "ssh_config"
    dotfiles.parent.mkdir()
    dotfiles.write_text("Host bastion\n    HostName 192.0.2.1\n")
    link = tmp_path / "ssh" / "config"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    _config_entry(world, moto_cluster, link)
    assert link.is_symlink() and link.resolve() == dotfiles  # still the user's link
    assert f"Host {world.cluster_name}\n" in dotfiles.read_text()
    assert dotfiles.read_text().startswith("Host bastion\n")


def test_print_config_puts_its_host_before_a_catch_all_block(world: World, moto_cluster: Any, tmp_path: Path) -> None:
    # ssh uses the first value it reads for each setting: after `Host *`, that block's User would win
    path = tmp_path / "config"
    path.write_text("Host bastion\n    HostName 192.0.2.1\n\nHost *\n    User nobody\n")
    _config_entry(world, moto_cluster, path)
    text = path.read_text()
    assert text.index("Host bastion") < text.index(f"Host {world.cluster_name}") < text.index("Host *")
    assert text.endswith("Host *\n    User nobody\n")


def test_print_config_to_a_directory_is_one_error_line(world: World, cli: Cli, tmp_path: Path) -> None:
    result = cli("ssh", "--print-config", "--ssh-config", str(tmp_path))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: --ssh-config {tmp_path} is a directory: name the ssh config file (e.g. ~/.ssh/config)"
    ]

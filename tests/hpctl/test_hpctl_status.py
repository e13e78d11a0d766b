"""`hpctl status`: the cluster and its nodes, from the stack's outputs or a cluster name."""

from __future__ import annotations

from typing import Any

from hpctl_world import Cli, World

from hpctl.runtime import Runtime


def test_status_from_the_stack_outputs_shows_the_cluster_in_service(cli: Cli, world: World) -> None:
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert f"Cluster {world.cluster_name} ({world.cluster_arn.rsplit('/', 1)[1]}): InService" in result.output


def test_status_lists_each_node_with_its_instance_type_and_status(cli: Cli, moto_cluster: Any) -> None:
    result = cli("status")
    rows = [line for line in result.output.splitlines() if "Running" in line]
    groups = moto_cluster.instance_groups
    assert len(rows) == sum(g["TargetCount"] for g in groups)
    for group in groups:
        assert any(group["InstanceGroupName"] in r and group["InstanceType"] in r for r in rows)


def test_status_by_cluster_name_needs_no_stack(cli: Cli, world: World) -> None:
    result = cli("status", "--stack", "no-such-stack", "--cluster", world.cluster_name)
    assert result.exit_code == 0, result.output
    assert "InService" in result.output


def test_wait_polls_until_the_cluster_is_in_service(cli: Cli, moto_cluster: Any) -> None:
    moto_cluster.status = "Creating"
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            moto_cluster.status = "InService"

    runtime = Runtime(connect=lambda region, profile: cli.aws, sleep=nap)
    result = cli("status", "--wait", "--interval", "5", runtime=runtime)
    assert result.exit_code == 0, result.output
    assert naps == [5, 5]
    assert ": InService" in result.output


def test_wait_fails_with_the_platforms_failure_message(world: World, cli: Cli, moto_cluster: Any) -> None:
    moto_cluster.status = "Failed"
    moto_cluster.failure_message = "Lifecycle script on_create.sh exited with 1 on controller-machine"
    result = cli("status", "--wait")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: cluster {world.cluster_name} is Failed: Lifecycle script on_create.sh exited with 1 on controller-machine"
    )


def test_wait_gives_up_after_the_timeout(world: World, cli: Cli, moto_cluster: Any) -> None:
    moto_cluster.status = "Creating"
    result = cli("status", "--wait", "--timeout", "0")
    assert result.exit_code == 1
    assert f"error: cluster {world.cluster_name} is still Creating after 0 min" in result.output


def test_unknown_stack_is_one_line_naming_the_fix(cli: Cli) -> None:
    result = cli("status", "--stack", "nope")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: ValidationError: Stack with id nope does not exist — check the stack name (--stack) and --region"
    ]


def test_unknown_cluster_is_one_line_naming_the_fix(cli: Cli) -> None:
    result = cli("status", "--cluster", "nope")
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith("error: ValidationException: Could not find cluster 'nope'.")
    assert "check the cluster name and --region" in result.output

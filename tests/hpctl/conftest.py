"""Fixtures: the stack synthesized once per session, and per test module a moto account
holding a HyperPod cluster created from it (see hpctl_world.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hpctl_world import ACCOUNT, REGION, Cli, World, build_world
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from hpctl.aws import Aws
from infra.build import STACK_NAME_DEFAULT


@pytest.fixture(scope="session")
def stack_name() -> str:
    return STACK_NAME_DEFAULT


@pytest.fixture(scope="module", autouse=True)
def isolated_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials for moto; nothing from the developer's ~/.aws or network leaks in."""
    empty = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "HPCTL_STACK"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("COLUMNS", "200")
        yield


@pytest.fixture(scope="module")
def world(template: dict[str, Any], stack_name: str, isolated_aws: None) -> Iterator[World]:
    """One moto account per test module (building it takes about a second)."""
    with mock_aws():
        yield build_world(template, stack_name)


@pytest.fixture
def moto_cluster(world: World) -> Iterator[Any]:
    """moto's own cluster object, for tests that change its state; restored afterwards."""
    cluster = sagemaker_backends[ACCOUNT][REGION].clusters[world.cluster_name]
    saved = (cluster.status, cluster.failure_message, {i: n.status for i, n in cluster.nodes.items()})
    yield cluster
    cluster.status, cluster.failure_message = saved[0], saved[1]
    for instance_id, status in saved[2].items():
        cluster.nodes[instance_id].status = status


@pytest.fixture
def cli(world: World) -> Cli:
    return Cli(session=world.session, execs=[], aws=Aws(world.session))


@pytest.fixture
def make_cli() -> Callable[[Aws], Cli]:
    """A Cli over any Aws (e.g. one whose clients are wrapped in a Stubber)."""
    return lambda aws: Cli(session=aws.session, execs=[], aws=aws)

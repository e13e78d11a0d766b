"""`hpctl validate`: pre-flight findings against moto's network, with Service Quotas stubbed
(moto only knows VPC quotas)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hpctl_world import Cli, World
from typer.testing import CliRunner

from hpctl.aws import Aws
from hpctl.main import app
from hpctl.runtime import Runtime

QuotaStub = Callable[..., Cli]


def _stub_quotas(stubber: Stubber, applied: Mapping[str, float], defaults: Mapping[str, float]) -> None:
    def listed(quotas: Mapping[str, float]) -> dict[str, Any]:
        return {"Quotas": [{"QuotaName": name, "Value": value} for name, value in quotas.items()]}

    stubber.add_response("list_aws_default_service_quotas", listed(defaults), {"ServiceCode": "sagemaker"})
    stubber.add_response("list_service_quotas", listed(applied), {"ServiceCode": "sagemaker"})


@pytest.fixture
def with_quotas(world: World, make_cli: Callable[[Aws], Cli]) -> Iterator[QuotaStub]:
    """A Cli whose account has these SageMaker quotas; EC2 and FSx are moto."""
    stubbers: list[Stubber] = []

    def build(applied: Mapping[str, float], defaults: Mapping[str, float] | None = None) -> Cli:
        aws = Aws(world.session)
        stubber = Stubber(aws.client("service-quotas"))
        _stub_quotas(stubber, applied, defaults or {})
        stubber.activate()
        stubbers.append(stubber)
        return make_cli(aws)

    yield build
    for stubber in stubbers:
        stubber.deactivate()


ENOUGH = {"ml.trn1.32xlarge for cluster usage": 4, "ml.c5.xlarge for cluster usage": 2}


def _line(output: str, needle: str) -> str:
    matches = [line for line in output.splitlines() if needle in line]
    assert len(matches) == 1, output
    return " ".join(matches[0].replace("│", " ").split())


def test_a_sound_plan_passes_every_check(world: World, with_quotas: QuotaStub) -> None:
    cli = with_quotas(ENOUGH)
    result = cli(
        "validate", "--no-context", "--workers", "2", "--subnet-id", world.private_subnet_id,
        "--security-group-id", world.security_group_id, "--fsx-id", world.fsx_id,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "6 passed, 0 failed"


def test_trn1_not_offered_in_the_zone_names_the_zones_that_have_it(with_quotas: QuotaStub) -> None:
    result = with_quotas(ENOUGH)("validate", "--no-context", "--az", "us-west-2a")
    assert result.exit_code == 1
    assert _line(result.output, "not offered") == (
        "✗ trn1.32xlarge in us-west-2a trn1.32xlarge is not offered in us-west-2a: use a subnet in us-west-2b, us-west-2d"
        " (zone IDs usw2-az1, usw2-az4: set availability_zone_id)"
    )


def test_a_quota_below_the_instance_count_says_what_to_request(with_quotas: QuotaStub) -> None:
    quotas = {**ENOUGH, "ml.trn1.32xlarge for cluster usage": 1}
    result = with_quotas(quotas)("validate", "--no-context", "--az", "us-west-2b", "--workers", "2")
    assert result.exit_code == 1
    assert _line(result.output, "quota ml.trn1") == (
        "✗ quota ml.trn1.32xlarge 'ml.trn1.32xlarge for cluster usage' is 1, the cluster needs 2: "
        "request an increase to 2 (Service Quotas, SageMaker)"
    )


def test_a_controller_of_the_worker_type_counts_against_the_same_quota(with_quotas: QuotaStub) -> None:
    quotas = {"ml.trn1.32xlarge for cluster usage": 2}
    result = with_quotas(quotas)(
        "validate",
        "--no-context",
        "--az",
        "us-west-2b",
        "--workers",
        "2",
        "--controller-type",
        "ml.trn1.32xlarge",
    )
    assert result.exit_code == 1
    assert "is 2, the cluster needs 3" in _line(result.output, "quota ml.trn1")


def test_a_quota_at_its_default_value_counts(with_quotas: QuotaStub) -> None:
    result = with_quotas({"ml.c5.xlarge for cluster usage": 1}, {"ml.trn1.32xlarge for cluster usage": 2})(
        "validate", "--no-context", "--az", "us-west-2b"
    )
    assert result.exit_code == 0, result.output
    assert "✓ quota ml.trn1.32xlarge 'ml.trn1.32xlarge for cluster usage' is 2" in _line(
        result.output, "quota ml.trn1"
    )


def test_unreadable_quotas_are_not_run_not_passed_and_the_other_checks_still_run(
    world: World, make_cli: Callable[[Aws], Cli]
) -> None:
    aws = Aws(world.session)
    with Stubber(aws.client("service-quotas")) as stubber:
        stubber.add_client_error("list_aws_default_service_quotas", "AccessDeniedException", "not allowed")
        result = make_cli(aws)("validate", "--no-context", "--az", "us-west-2b")
    assert result.exit_code == 0, result.output
    assert "? quotas could not read SageMaker quotas: AccessDeniedException: not allowed" in _line(
        result.output, "quotas"
    )
    assert result.output.splitlines()[-1] == "1 passed, 0 failed, 1 not run"
    assert "✓ trn1.32xlarge in us-west-2b" in _line(result.output, "offered")


def test_a_missing_quota_is_a_failure_that_names_it(with_quotas: QuotaStub) -> None:
    result = with_quotas({"ml.c5.xlarge for cluster usage": 1})(
        "validate", "--no-context", "--az", "us-west-2b"
    )
    assert result.exit_code == 1
    assert "no 'ml.trn1.32xlarge for cluster usage' quota in us-west-2: request 2" in _line(
        result.output, "quota ml.trn1"
    )


def test_a_public_subnet_fails_with_what_to_use_instead(world: World, with_quotas: QuotaStub) -> None:
    result = with_quotas(ENOUGH)("validate", "--no-context", "--subnet-id", world.public_subnet_id)
    assert result.exit_code == 1
    assert _line(result.output, "private") == (
        f"✗ subnet {world.public_subnet_id} private subnet {world.public_subnet_id} routes 0.0.0.0/0 to an internet "
        "gateway: use a private subnet (default route to a NAT gateway)"
    )


def test_a_security_group_without_self_rules_fails_naming_both_directions(
    world: World, with_quotas: QuotaStub
) -> None:
    sg = world.open_security_group_id
    result = with_quotas(ENOUGH)("validate", "--no-context", "--az", "us-west-2b", "--security-group-id", sg)
    assert result.exit_code == 1
    assert f"{sg} lacks a self-referencing all-traffic ingress and egress rule" in _line(
        result.output, "security group"
    )


def test_fsx_in_another_zone_fails(world: World, with_quotas: QuotaStub) -> None:
    result = with_quotas(ENOUGH)(
        "validate", "--no-context", "--subnet-id", world.other_zone_subnet_id, "--fsx-id", world.fsx_id
    )
    assert result.exit_code == 1
    assert f"{world.fsx_id} is in us-west-2b, the cluster in us-west-2a: put both in one AZ" in _line(
        result.output, "FSx"
    )


def test_the_plan_is_read_from_cdk_json_context(tmp_path: Path, with_quotas: QuotaStub) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(
        json.dumps(
            {"app": "python app.py", "context": {"worker_count": 3, "availability_zone": "us-west-2d"}}
        )
    )
    result = with_quotas(ENOUGH)("validate", "--context-file", str(cdk_json))
    assert "✓ trn1.32xlarge in us-west-2d" in _line(result.output, "offered")
    assert "is 4, the cluster needs 3" in _line(result.output, "quota ml.trn1")


def _context_file(tmp_path: Path, **context: Any) -> str:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": context}))
    return str(cdk_json)


def test_a_zone_id_that_offers_the_worker_type_passes(tmp_path: Path, with_quotas: QuotaStub) -> None:
    """moto's offerings by zone ID (its snapshot of a real account): trn1 in usw2-az1 and usw2-az4."""
    result = with_quotas(ENOUGH)("validate", "--context-file", _context_file(tmp_path, availability_zone_id="usw2-az4"))
    assert result.exit_code == 0, result.output
    assert _line(result.output, "offered") == "✓ trn1.32xlarge in usw2-az4 trn1.32xlarge is offered in zone ID usw2-az4"


def test_a_zone_id_without_the_worker_type_names_the_ids_that_have_it(
    tmp_path: Path, with_quotas: QuotaStub
) -> None:
    result = with_quotas(ENOUGH)("validate", "--context-file", _context_file(tmp_path, availability_zone_id="usw2-az2"))
    assert result.exit_code == 1
    assert _line(result.output, "not offered") == (
        "✗ trn1.32xlarge in usw2-az2 trn1.32xlarge is not offered in zone ID usw2-az2: "
        "set availability_zone_id to one of usw2-az1, usw2-az4"
    )


def test_a_zone_id_of_another_region_is_named(tmp_path: Path, with_quotas: QuotaStub) -> None:
    result = with_quotas(ENOUGH)("validate", "--context-file", _context_file(tmp_path, availability_zone_id="use1-az4"))
    assert result.exit_code == 2  # a mistake in the local cdk.json, found before any AWS call
    assert result.output.splitlines()[0].startswith(
        "error: context key 'availability_zone_id': must be a zone ID of region us-west-2"
    )


def test_a_bad_context_value_is_named(tmp_path: Path, with_quotas: QuotaStub) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"worker_count": "many"}}))
    result = with_quotas(ENOUGH)("validate", "--context-file", str(cdk_json))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: context key 'worker_count': must be a whole number, got 'many'"
    ]


def test_the_checks_run_in_the_region_cdk_json_deploys_to(world: World, tmp_path: Path) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"region": "us-east-1", "availability_zone": "us-east-1c"}}))
    regions: list[str | None] = []

    def connect(region: str | None, profile: str | None) -> Aws:
        regions.append(region)
        aws = Aws(boto3.Session(region_name=region))
        stubber = Stubber(aws.client("service-quotas"))
        _stub_quotas(stubber, {}, {})
        stubber.activate()
        return aws

    result = CliRunner().invoke(
        app, ["validate", "--context-file", str(cdk_json)], obj=Runtime(connect=connect)
    )
    assert regions == ["us-east-1"]
    assert "✓ trn1.32xlarge in us-east-1c" in _line(result.output, "offered")


def test_the_projects_own_cdk_json_passes_with_enough_quota(with_quotas: QuotaStub) -> None:
    cdk_json = Path(__file__).resolve().parents[2] / "cdk.json"
    result = with_quotas(ENOUGH)("validate", "--context-file", str(cdk_json))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "3 passed, 0 failed"


TRN1_AND_TRN1N = [
    {"name": "trn1-a", "instance_type": "ml.trn1.32xlarge", "count": 2},
    {"name": "trn1n-a", "instance_type": "ml.trn1n.32xlarge", "count": 1},
]
WITH_TRN1N = {**ENOUGH, "ml.trn1n.32xlarge for cluster usage": 1}


def test_each_worker_groups_type_is_checked_and_the_group_not_offered_is_named(
    tmp_path: Path, with_quotas: QuotaStub
) -> None:
    """moto's offerings: trn1.32xlarge in us-west-2b and us-west-2d, trn1n.32xlarge in us-west-2d only."""
    context = _context_file(tmp_path, availability_zone="us-west-2b", worker_groups=TRN1_AND_TRN1N)
    result = with_quotas(WITH_TRN1N)("validate", "--context-file", context)
    assert result.exit_code == 1
    assert _line(result.output, "trn1.32xlarge in") == (
        "✓ trn1.32xlarge in us-west-2b trn1.32xlarge (worker group trn1-a) is offered in us-west-2b"
    )
    assert _line(result.output, "not offered") == (
        "✗ trn1n.32xlarge in us-west-2b trn1n.32xlarge (worker group trn1n-a) is not offered in us-west-2b: "
        "use a subnet in us-west-2d (zone IDs usw2-az4: set availability_zone_id)"
    )


def test_each_worker_groups_type_is_checked_by_zone_id(tmp_path: Path, with_quotas: QuotaStub) -> None:
    context = _context_file(tmp_path, availability_zone_id="usw2-az1", worker_groups=TRN1_AND_TRN1N)
    result = with_quotas(WITH_TRN1N)("validate", "--context-file", context)
    assert result.exit_code == 1
    assert "✓ trn1.32xlarge in usw2-az1" in _line(result.output, "trn1.32xlarge in")
    assert _line(result.output, "not offered") == (
        "✗ trn1n.32xlarge in usw2-az1 trn1n.32xlarge (worker group trn1n-a) is not offered in zone ID usw2-az1: "
        "set availability_zone_id to one of usw2-az4"
    )


def test_groups_of_one_type_are_summed_against_its_quota(tmp_path: Path, with_quotas: QuotaStub) -> None:
    groups = [
        {"name": "trn1-a", "instance_type": "ml.trn1.32xlarge", "count": 2},
        {"name": "trn1-b", "instance_type": "ml.trn1.32xlarge", "count": 3},
    ]
    context = _context_file(tmp_path, availability_zone="us-west-2d", worker_groups=groups)
    result = with_quotas(ENOUGH)("validate", "--context-file", context)  # 4 trn1.32xlarge allowed
    assert result.exit_code == 1
    assert _line(result.output, "quota ml.trn1") == (
        "✗ quota ml.trn1.32xlarge 'ml.trn1.32xlarge for cluster usage' is 4, the cluster needs 5 "
        "(trn1-a 2 + trn1-b 3): request an increase to 5 (Service Quotas, SageMaker)"
    )
    assert _line(result.output, "trn1.32xlarge in") == (  # one offering check for the type, naming both groups
        "✓ trn1.32xlarge in us-west-2d trn1.32xlarge (worker groups trn1-a, trn1-b) is offered in us-west-2d"
    )


def test_the_default_groups_options_are_refused_when_the_context_has_worker_groups(
    tmp_path: Path, with_quotas: QuotaStub
) -> None:
    context = _context_file(tmp_path, worker_groups=TRN1_AND_TRN1N)
    result = with_quotas(WITH_TRN1N)("validate", "--context-file", context, "--workers", "4")
    assert result.exit_code == 2  # --workers would be silently ignored: the groups replace the default group
    assert result.output.splitlines() == [
        "error: worker_count is given on the command line, but the context sets worker_groups, which replaces the "
        "one default worker group: change the groups in cdk.json, or pass --no-context"
    ]

"""Settings for a user who outgrows two nodes: several worker groups (each its own Slurm
partition), a training plan's reserved capacity, continuous node provisioning and deep
health checks on start, each checked at synth and carried into the template."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from cfn_resolver import Physical, Resolver, pseudo_parameters
from cfnlint.api import ManualArgs, lint
from infra_template import only, resources, synthesized

from infra.config import ClusterConfig, ConfigError
from infra.provisioning import instance_groups, provisioning_parameters

REGION = ClusterConfig().region
PLAN = f"arn:aws:sagemaker:{REGION}:123456789012:training-plan/trn1-reserved"
GROUPS = [
    {"name": "trn1-big", "instance_type": "ml.trn1.32xlarge", "count": 16, "training_plan_arn": PLAN},
    {"name": "trn1n", "instance_type": "ml.trn1n.32xlarge", "count": 4},
]
SCALE = {
    "worker_groups": json.dumps(GROUPS),
    "node_provisioning_mode": "Continuous",
    "deep_health_checks": json.dumps(["InstanceStress", "InstanceConnectivity"]),
}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesized(tmp_path_factory.mktemp("scaled"), **SCALE)


def _groups(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    _, cluster = only(template, "AWS::SageMaker::Cluster")
    return {g["InstanceGroupName"]: g for g in cluster["Properties"]["InstanceGroups"]}


def test_each_worker_group_becomes_an_instance_group_of_its_type_and_count(scaled: dict[str, Any]) -> None:
    groups = _groups(scaled)

    assert list(groups) == ["controller-machine", "trn1-big", "trn1n"]
    assert [(g["InstanceType"], g["InstanceCount"]) for g in list(groups.values())[1:]] == [
        ("ml.trn1.32xlarge", 16),
        ("ml.trn1n.32xlarge", 4),
    ]


def test_each_worker_group_is_the_slurm_partition_of_its_name() -> None:
    config = ClusterConfig.from_mapping(SCALE)
    parameters = provisioning_parameters(config, fsx_dns_name="d", fsx_mount_name="m", hf_token_secret_arn="a")

    assert parameters["worker_groups"] == [
        {"instance_group_name": "trn1-big", "partition_name": "trn1-big", "instance_type": "ml.trn1.32xlarge"},
        {"instance_group_name": "trn1n", "partition_name": "trn1n", "instance_type": "ml.trn1n.32xlarge"},
    ]
    assert [g.name for g in instance_groups(config)][1:] == ["trn1-big", "trn1n"]


def test_the_default_is_one_trn1_group_in_the_trn1_partition() -> None:
    parameters = provisioning_parameters(
        ClusterConfig(), fsx_dns_name="d", fsx_mount_name="m", hf_token_secret_arn="a"
    )

    assert [(g["instance_group_name"], g["partition_name"]) for g in parameters["worker_groups"]] == [
        ("worker-group-1", "trn1")
    ]


def test_a_training_plan_reserves_capacity_for_its_group_only(scaled: dict[str, Any]) -> None:
    groups = _groups(scaled)

    assert groups["trn1-big"]["TrainingPlanArn"] == PLAN
    assert "TrainingPlanArn" not in groups["trn1n"]
    assert "TrainingPlanArn" not in groups["controller-machine"]


def test_workers_run_deep_health_checks_on_start_and_the_controller_does_not(scaled: dict[str, Any]) -> None:
    groups = _groups(scaled)

    for name in ("trn1-big", "trn1n"):
        assert groups[name]["OnStartDeepHealthChecks"] == ["InstanceStress", "InstanceConnectivity"]
    assert "OnStartDeepHealthChecks" not in groups["controller-machine"]


def test_continuous_provisioning_is_set_only_when_asked(scaled: dict[str, Any], cluster: dict[str, Any]) -> None:
    _, scaled_cluster = only(scaled, "AWS::SageMaker::Cluster")

    assert scaled_cluster["Properties"]["NodeProvisioningMode"] == "Continuous"
    assert "NodeProvisioningMode" not in cluster["Properties"]


def test_the_scaled_template_is_cfn_lint_clean(scaled: dict[str, Any]) -> None:
    matches = lint(json.dumps(scaled), config=ManualArgs(regions=[REGION]))

    assert [str(m) for m in matches if m.rule.severity == "error"] == []


def test_moto_creates_the_scaled_cluster(scaled: dict[str, Any], aws: boto3.Session) -> None:
    physical = {lid: Physical(ref="subnet-0abc") for lid in resources(scaled, "AWS::EC2::Subnet")}
    physical |= {lid: Physical(ref="sg", attrs={"GroupId": "sg-0abc"}) for lid in resources(scaled, "AWS::EC2::SecurityGroup")}
    physical |= {
        lid: Physical(ref="exec", attrs={"Arn": "arn:aws:iam::123456789012:role/exec"})
        for lid in resources(scaled, "AWS::IAM::Role")
    }
    physical |= {lid: Physical(ref="sagemaker-bucket") for lid in resources(scaled, "AWS::S3::Bucket")}
    pseudo = pseudo_parameters(REGION, "123456789012")
    _, cluster = only(scaled, "AWS::SageMaker::Cluster")
    properties = Resolver(template=scaled, physical=physical, pseudo=pseudo).resolve(cluster["Properties"])
    properties.pop("Tags")

    sagemaker = aws.client("sagemaker")
    arn = sagemaker.create_cluster(**properties)["ClusterArn"]

    described = sagemaker.describe_cluster(ClusterName=arn)
    assert [g["InstanceGroupName"] for g in described["InstanceGroups"]] == ["controller-machine", "trn1-big", "trn1n"]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("worker_groups", [{"name": "a", "instance-type": "ml.trn1.32xlarge", "count": 2}], "did you mean 'instance_type'"),
        ("worker_groups", [{"name": "a", "instance_type": "ml.trn1.32xlarge"}], r"worker_groups\[0\] needs count"),
        ("worker_groups", [{"name": "a", "instance_type": "ml.trn1.32xlarge", "count": 0}], "count must be at least 1"),
        ("worker_groups", [{"name": "a", "instance_type": "ml.trn1.32xlarge", "count": "2"}], "whole number"),
        ("worker_groups", [{"name": "a_b", "instance_type": "ml.trn1.32xlarge", "count": 2}], "letters, digits and hyphens"),
        ("worker_groups", [{"name": "a", "instance_type": "ml.trn9.32xlarge", "count": 2}], r"worker_groups\[0\].instance_type 'ml.trn9"),
        ("worker_groups", [{"name": "a", "instance_type": "ml.trn2.48xlarge", "count": 2}], "not offered by HyperPod in us-west-2"),
        ("worker_groups", [GROUPS[1], GROUPS[1]], "'trn1n' is taken"),
        ("worker_groups", [{**GROUPS[1], "name": "controller-machine"}], "is taken"),
        ("worker_groups", [{**GROUPS[1], "training_plan_arn": "plan-1"}], r"worker_groups\[0\].training_plan_arn must be"),
        ("worker_groups", "[{", "must be JSON"),
        ("worker_groups", {"name": "a"}, "must be a list"),
        ("training_plan_arn", "arn:aws:sagemaker:us-west-2:1:training-plan/x", "training plan ARN"),
        ("node_provisioning_mode", "Fast", "must be one of Continuous"),
        ("deep_health_checks", ["InstanceStress", "Burn"], "distinct checks among InstanceStress, InstanceConnectivity"),
        ("deep_health_checks", "InstanceStress", "must be JSON"),
    ],
)
def test_a_bad_scale_setting_fails_naming_its_key(key: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as error:
        ClusterConfig.from_mapping({key: value})

    assert error.value.key == key


def test_a_training_plan_for_the_default_group_goes_per_group_once_groups_are_listed() -> None:
    with pytest.raises(ConfigError, match="set it per group") as error:
        ClusterConfig.from_mapping({"training_plan_arn": PLAN, "worker_groups": GROUPS[1:]})

    assert error.value.key == "training_plan_arn"


def test_the_default_group_takes_the_training_plan() -> None:
    config = ClusterConfig.from_mapping({"training_plan_arn": PLAN})

    assert [g.training_plan_arn for g in instance_groups(config)] == [None, PLAN]

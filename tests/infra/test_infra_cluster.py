"""The HyperPod cluster, its role, and the provisioning_parameters.json its nodes read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template
from infra_template import only, resources

from infra.config import ClusterConfig
from infra.provisioning import instance_groups, provisioning_parameters

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def _groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["InstanceGroupName"]: g for g in cluster["Properties"]["InstanceGroups"]}


def _contract_example() -> dict[str, Any]:
    """The provisioning_parameters.json example in docs/contracts.md."""
    text = CONTRACTS.read_text()
    match = re.search(r"`provisioning_parameters.json`.*?```json\n(.*?)```", text, re.S)
    assert match, "docs/contracts.md has no provisioning_parameters.json example"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_the_cluster_has_a_controller_and_a_trn1_worker_group(cluster: dict[str, Any]) -> None:
    config = ClusterConfig()
    groups = _groups(cluster)

    assert groups["controller-machine"]["InstanceType"] == config.controller_instance_type
    assert groups["controller-machine"]["InstanceCount"] == 1
    assert groups["worker-group-1"]["InstanceType"] == "ml.trn1.32xlarge"
    assert groups["worker-group-1"]["InstanceCount"] == config.worker_count


def test_workers_run_one_thread_per_core(cluster: dict[str, Any]) -> None:
    assert _groups(cluster)["worker-group-1"]["ThreadsPerCore"] == 1


def test_each_group_gets_its_configured_ebs_volume(cluster: dict[str, Any]) -> None:
    config = ClusterConfig()
    groups = _groups(cluster)

    assert groups["controller-machine"]["InstanceStorageConfigs"] == [
        {"EbsVolumeConfig": {"VolumeSizeInGB": config.controller_volume_gib}}
    ]
    assert groups["worker-group-1"]["InstanceStorageConfigs"] == [
        {"EbsVolumeConfig": {"VolumeSizeInGB": config.worker_volume_gib}}
    ]


def test_nodes_recover_automatically(cluster: dict[str, Any]) -> None:
    assert cluster["Properties"]["NodeRecovery"] == "Automatic"


def test_every_group_runs_on_create_from_the_lifecycle_prefix(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    (bucket_lid,) = [
        lid for lid, r in resources(template, "AWS::S3::Bucket").items() if "BucketName" in r["Properties"]
    ]
    for group in _groups(cluster).values():
        assert group["LifeCycleConfig"] == {
            "OnCreate": "on_create.sh",
            "SourceS3Uri": {"Fn::Join": ["", ["s3://", {"Ref": bucket_lid}, "/lifecycle/"]]},
        }


def test_the_cluster_waits_for_the_scripts_the_role_policy_and_fsx(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    depends = set(cluster["DependsOn"])

    assert {lid for lid in resources(template, "Custom::CDKBucketDeployment")} <= depends
    assert {
        lid for lid in resources(template, "AWS::IAM::Policy") if lid.startswith("ExecutionRole")
    } <= depends
    assert only(template, "AWS::FSx::FileSystem")[0] in depends


def test_the_execution_role_is_assumed_by_sagemaker(
    template: dict[str, Any], cluster: dict[str, Any]
) -> None:
    (role_lid,) = {g["ExecutionRole"]["Fn::GetAtt"][0] for g in _groups(cluster).values()}
    role = template["Resources"][role_lid]["Properties"]

    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    assert role["ManagedPolicyArns"] == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":iam::aws:policy/AmazonSageMakerClusterInstanceRolePolicy",
                ],
            ]
        }
    ]


def test_the_execution_role_may_manage_the_nodes_network_interfaces(stack: Template) -> None:
    stack.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(
                                    [
                                        "ec2:CreateNetworkInterface",
                                        "ec2:DeleteNetworkInterface",
                                        "ec2:DescribeSubnets",
                                    ]
                                ),
                                "Resource": "*",
                            }
                        )
                    ]
                )
            },
            "Roles": Match.array_with([{"Ref": Match.string_like_regexp("^ExecutionRole")}]),
        },
    )


def test_the_execution_role_reads_the_token_secret_and_nothing_else_of_secrets_manager(
    template: dict[str, Any],
) -> None:
    secret_lid, _ = only(template, "AWS::SecretsManager::Secret")
    statements = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(
            a.startswith("secretsmanager:")
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    ]

    assert statements == [
        {
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "Effect": "Allow",
            "Resource": {"Ref": secret_lid},
        }
    ]


def test_the_execution_role_writes_only_under_the_data_prefix(template: dict[str, Any]) -> None:
    (role_policy,) = [
        p for lid, p in resources(template, "AWS::IAM::Policy").items() if lid.startswith("ExecutionRole")
    ]
    writes = [
        s for s in role_policy["Properties"]["PolicyDocument"]["Statement"] if "s3:PutObject" in s["Action"]
    ]

    (write,) = writes
    resources_written = write["Resource"] if isinstance(write["Resource"], list) else [write["Resource"]]
    assert [r["Fn::Join"][1][-1] for r in resources_written] == ["/data/*"]


def test_provisioning_parameters_have_exactly_the_contract_keys(provisioning: dict[str, Any]) -> None:
    assert list(provisioning) == list(_contract_example())


def test_provisioning_group_names_are_the_cluster_instance_group_names(
    provisioning: dict[str, Any], cluster: dict[str, Any]
) -> None:
    names = list(_groups(cluster))

    assert [provisioning["controller_group"]] + [
        g["instance_group_name"] for g in provisioning["worker_groups"]
    ] == names
    assert provisioning["login_group"] is None


def test_provisioning_parameters_name_the_stack_fsx_and_secret(
    template: dict[str, Any], provisioning: dict[str, Any]
) -> None:
    fsx_lid, _ = only(template, "AWS::FSx::FileSystem")
    secret_lid, _ = only(template, "AWS::SecretsManager::Secret")

    assert provisioning["fsx_dns_name"] == "{Ref:" + fsx_lid + "}.fsx.us-west-2.{Ref:AWS::URLSuffix}"
    assert provisioning["fsx_mountname"] == "{" + fsx_lid + ".LustreMountName}"
    assert provisioning["hf_token_secret_arn"] == "{Ref:" + secret_lid + "}"
    assert provisioning["region"] == ClusterConfig().region


def test_a_login_group_appears_in_both_the_cluster_and_the_parameters() -> None:
    config = ClusterConfig(login_instance_type="ml.m5.2xlarge")
    names = [g.name for g in instance_groups(config)]
    parameters = provisioning_parameters(
        config, fsx_dns_name="d", fsx_mount_name="m", hf_token_secret_arn="a"
    )

    assert names == [parameters["controller_group"], parameters["login_group"], "worker-group-1"]


def test_the_uploaded_scripts_leave_out_tests_and_caches(
    template: dict[str, Any], assembly_dir: Path
) -> None:
    _, deployment = only(template, "Custom::CDKBucketDeployment")
    staged = [
        assembly_dir / f"asset.{k.removesuffix('.zip')}" for k in deployment["Properties"]["SourceObjectKeys"]
    ]
    (scripts,) = [d for d in staged if (d / "on_create.sh").is_file()]
    names = {p.name for p in scripts.rglob("*")}

    assert "__pycache__" not in names
    assert "tests" not in names
    assert not any(n.endswith(".pyc") for n in names)


def test_the_training_package_and_job_templates_ship_as_project_next_to_the_scripts(
    template: dict[str, Any], assembly_dir: Path
) -> None:
    _, deployment = only(template, "Custom::CDKBucketDeployment")
    staged = [
        assembly_dir / f"asset.{k.removesuffix('.zip')}" for k in deployment["Properties"]["SourceObjectKeys"]
    ]
    (bundle,) = [d / "project" for d in staged if (d / "project").is_dir()]

    assert (bundle / "pyproject.toml").is_file()
    assert (bundle / "training" / "finetune.py").is_file()
    assert (bundle / "jobs" / "submit").is_file()
    assert not list(bundle.rglob("__pycache__"))


def test_the_nodes_are_told_where_the_project_lives_on_fsx(provisioning: dict[str, Any]) -> None:
    assert provisioning["project_dir"].startswith(provisioning["fsx_mount_point"] + "/")

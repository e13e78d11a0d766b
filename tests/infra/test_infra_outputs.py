"""The outputs hpctl reads (docs/contracts.md), which replace a hand-written config."""

from __future__ import annotations

from typing import Any

from infra_template import only

CONTRACT_KEYS = {
    "ClusterName",
    "ClusterArn",
    "ControllerGroupName",
    "BucketName",
    "FsxFileSystemId",
    "FsxDnsName",
    "FsxMountName",
    "SsmTargetPrefix",
    "SsmRunAsDocumentName",
    "HfTokenSecretArn",
}


def _value(template: dict[str, Any], key: str) -> Any:
    return template["Outputs"][key]["Value"]


def test_the_outputs_are_exactly_the_contract_keys(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == CONTRACT_KEYS


def test_the_cluster_outputs_name_the_cluster(template: dict[str, Any], cluster: dict[str, Any]) -> None:
    lid, _ = only(template, "AWS::SageMaker::Cluster")

    assert _value(template, "ClusterName") == cluster["Properties"]["ClusterName"]
    assert _value(template, "ClusterArn") == {"Fn::GetAtt": [lid, "ClusterArn"]}
    assert (
        _value(template, "ControllerGroupName")
        == cluster["Properties"]["InstanceGroups"][0]["InstanceGroupName"]
    )


def test_the_ssm_target_is_the_cluster_id_and_controller_group(template: dict[str, Any]) -> None:
    lid, _ = only(template, "AWS::SageMaker::Cluster")
    cluster_id = {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": [lid, "ClusterArn"]}]}]}

    assert _value(template, "SsmTargetPrefix") == {
        "Fn::Join": ["", ["sagemaker-cluster:", cluster_id, "_controller-machine-"]]
    }


def test_the_storage_outputs_name_the_bucket_and_fsx(template: dict[str, Any]) -> None:
    fsx, _ = only(template, "AWS::FSx::FileSystem")

    assert _value(template, "FsxFileSystemId") == {"Ref": fsx}
    assert _value(template, "FsxMountName") == {"Fn::GetAtt": [fsx, "LustreMountName"]}
    assert _value(template, "BucketName")["Ref"] in template["Resources"]


def test_the_session_document_runs_shells_as_ubuntu(template: dict[str, Any]) -> None:
    lid, document = only(template, "AWS::SSM::Document")

    assert _value(template, "SsmRunAsDocumentName") == {"Ref": lid}
    assert document["Properties"]["DocumentType"] == "Session"
    assert document["Properties"]["Content"]["inputs"]["runAsEnabled"] is True
    assert document["Properties"]["Content"]["inputs"]["runAsDefaultUser"] == "ubuntu"


def test_the_token_secret_holds_no_token_from_the_template(template: dict[str, Any]) -> None:
    lid, secret = only(template, "AWS::SecretsManager::Secret")

    assert _value(template, "HfTokenSecretArn") == {"Ref": lid}
    assert "SecretString" not in secret["Properties"]
    assert "GenerateSecretString" in secret["Properties"]

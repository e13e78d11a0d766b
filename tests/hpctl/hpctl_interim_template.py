"""Interim stand-in for the synthesized stack while infra.build lands (same shape as CDK output)."""

from __future__ import annotations

from typing import Any

STACK_NAME = "HyperPodTrnLora"


def template() -> dict[str, Any]:
    return {
        "Resources": {
            "VpcAbc123": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "VpcPrivateSubnet1Def456": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {"VpcId": {"Ref": "VpcAbc123"}},
            },
            "ClusterSg789": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"VpcId": {"Ref": "VpcAbc123"}},
            },
            "ExecRoleAaa": {"Type": "AWS::IAM::Role", "Properties": {}},
            "BucketBbb": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": {
                        "Fn::Join": [
                            "",
                            [
                                "sagemaker-hyperpod-trn-",
                                {"Ref": "AWS::AccountId"},
                                "-",
                                {"Ref": "AWS::Region"},
                            ],
                        ]
                    }
                },
            },
            "FsxCcc": {"Type": "AWS::FSx::FileSystem", "Properties": {}},
            "RunAsUbuntuDdd": {
                "Type": "AWS::SSM::Document",
                "Properties": {"Name": "SSM-SessionManagerRunShellAsUbuntu"},
            },
            "ClusterEee": {
                "Type": "AWS::SageMaker::Cluster",
                "Properties": {
                    "ClusterName": "trn1-lora",
                    "InstanceGroups": [
                        {
                            "InstanceGroupName": "controller-machine",
                            "InstanceType": "ml.c5.xlarge",
                            "InstanceCount": 1,
                            "ExecutionRole": {"Fn::GetAtt": ["ExecRoleAaa", "Arn"]},
                            "LifeCycleConfig": {
                                "SourceS3Uri": {
                                    "Fn::Join": ["", ["s3://", {"Ref": "BucketBbb"}, "/lifecycle/"]]
                                },
                                "OnCreate": "on_create.sh",
                            },
                            "ThreadsPerCore": 1,
                        },
                        {
                            "InstanceGroupName": "worker-group-1",
                            "InstanceType": "ml.trn1.32xlarge",
                            "InstanceCount": 2,
                            "ExecutionRole": {"Fn::GetAtt": ["ExecRoleAaa", "Arn"]},
                            "LifeCycleConfig": {
                                "SourceS3Uri": {
                                    "Fn::Join": ["", ["s3://", {"Ref": "BucketBbb"}, "/lifecycle/"]]
                                },
                                "OnCreate": "on_create.sh",
                            },
                            "ThreadsPerCore": 1,
                        },
                    ],
                    "VpcConfig": {
                        "SecurityGroupIds": [{"Fn::GetAtt": ["ClusterSg789", "GroupId"]}],
                        "Subnets": [{"Ref": "VpcPrivateSubnet1Def456"}],
                    },
                    "NodeRecovery": "Automatic",
                },
            },
        },
        "Outputs": {
            "ClusterName": {"Value": "trn1-lora"},
            "ClusterArn": {"Value": {"Fn::GetAtt": ["ClusterEee", "ClusterArn"]}},
            "ControllerGroupName": {"Value": "controller-machine"},
            "BucketName": {"Value": {"Ref": "BucketBbb"}},
            "FsxFileSystemId": {"Value": {"Ref": "FsxCcc"}},
            "FsxDnsName": {"Value": {"Fn::GetAtt": ["FsxCcc", "DNSName"]}},
            "FsxMountName": {"Value": {"Fn::GetAtt": ["FsxCcc", "LustreMountName"]}},
            "SsmTargetPrefix": {
                "Value": {
                    "Fn::Join": [
                        "",
                        [
                            "sagemaker-cluster:",
                            {
                                "Fn::Select": [
                                    1,
                                    {"Fn::Split": ["/", {"Fn::GetAtt": ["ClusterEee", "ClusterArn"]}]},
                                ]
                            },
                            "_controller-machine-",
                        ],
                    ]
                }
            },
            "SsmRunAsDocumentName": {"Value": {"Ref": "RunAsUbuntuDdd"}},
        },
    }

"""The Hugging Face token, kept in Secrets Manager so it never sits in a job script,
a template or a log: jobs fetch it at run time with the node role.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge


class HfTokenSecret(Construct):
    """`secret` starts with a random placeholder; the operator puts the real token in
    (`aws secretsmanager put-secret-value`), so it never passes through CloudFormation."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster_name: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description=f"Hugging Face access token for HyperPod cluster {cluster_name} (gated Llama 3 weights)",
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.secret,
            "A Hugging Face token is rotated on huggingface.co, which no rotation Lambda can do",
            "AwsSolutions-SMG4",
        )

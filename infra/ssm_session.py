"""An SSM Session Manager document that opens shells as the cluster's default user,
so `aws ssm start-session` lands where Slurm jobs are submitted rather than as ssm-user.
"""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct


class RunAsSessionDocument(Construct):
    """`document_name` is what `aws ssm start-session --document-name` takes."""

    def __init__(self, scope: Construct, construct_id: str, *, user: str) -> None:
        super().__init__(scope, construct_id)
        document = ssm.CfnDocument(
            self,
            "Document",
            document_type="Session",
            document_format="JSON",
            content={
                "schemaVersion": "1.0",
                "description": f"Interactive shell as {user} on HyperPod nodes",
                "sessionType": "Standard_Stream",
                "inputs": {
                    "runAsEnabled": True,
                    "runAsDefaultUser": user,
                    "idleSessionTimeout": "60",
                    "shellProfile": {"linux": "cd ~ && exec bash -l"},
                },
            },
        )
        self.document_name = document.ref

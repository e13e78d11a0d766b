"""The create-only guard: a custom resource holding the create-only settings, which every
resource they would replace waits for. Its handler (create_only_guard/index.py) fails an
update that changes one, before CloudFormation replaces anything."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

HANDLER_SOURCE = Path(__file__).resolve().parent / "create_only_guard" / "index.py"


class CreateOnlyGuard(Construct):
    """`resource` is what the replaceable resources depend on."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Mapping[str, str | None], allow_replacement: bool
    ) -> None:
        super().__init__(scope, construct_id)
        handler = lambda_.Function(
            self,
            "Handler",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline(HANDLER_SOURCE.read_text()),
            timeout=Duration.minutes(1),
            description="Fails a stack update that changes a create-only setting",
            log_retention=None,
            log_group=logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH),
        )
        assert handler.role is not None
        acknowledge(
            handler.role,
            "Lambda's basic execution policy only lets the guard write its own logs",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=handler.function_arn,
            resource_type="Custom::CreateOnlyGuard",
            properties={
                # CloudFormation hands properties to the handler as strings; "" stands for unset.
                "Settings": {key: "" if value is None else str(value) for key, value in settings.items()},
                "AllowReplacement": "true" if allow_replacement else "false",
            },
        )

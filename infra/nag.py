"""Acknowledging cdk-nag findings: each one by its full id, with the reason it is
right here, on the narrowest construct that raises it."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

# The wildcard actions of CDK's bucket grants (grant_read, grant_read_write).
S3_GRANT_ACTIONS = ("s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:Abort*", "s3:DeleteObject*")


def acknowledge(scope: IConstruct, reason: str, *rule_ids: str) -> None:
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids))


def wildcard_actions(*actions: str) -> list[str]:
    return [f"AwsSolutions-IAM5[Action::{action}]" for action in actions]


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The IAM5 finding id for a policy resource, which may hold tokens: cdk-nag names
    a Ref as <Id> and a GetAtt as <Id.Attr>, so ids stay right if logical ids change."""
    return f"AwsSolutions-IAM5[Resource::{_render(Stack.of(scope).resolve(resource))}]"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Join":
            return str(arg[0]).join(_render(part) for part in arg[1])
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}]+)\}", r"<\1>", arg)
    raise ValueError(f"cannot name a cdk-nag finding for {value!r}")

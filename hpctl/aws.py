"""AWS sessions and clients for hpctl, and the one place AWS errors become advice.

Every command talks to AWS through an `Aws` object so tests can hand in a session
bound to moto, or a client wrapped in a botocore Stubber, without patching.

boto3 and botocore are imported when a command first connects, never at import time:
with rich, they were two thirds of hpctl's start-up (0.19 s of 0.28 s for --help), and
a mistake in a command's own input must be answered without them
(tests/hpctl/test_hpctl_bad_inputs.py checks).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3


class HpctlError(Exception):
    """An AWS-side failure the user can act on: printed as one line, exit code 1."""


class UsageError(HpctlError):
    """A mistake in the command's own input (a flag, a local file): one line, exit code 2, before any AWS call."""


# The variable boto3 reads for the region (botocore/configprovider.py: 'region' -> AWS_DEFAULT_REGION);
# AWS_REGION is only read by the AWS CLI v2 and some SDKs, not by boto3.
REGION_ENV = "AWS_DEFAULT_REGION"
NO_REGION = f"no AWS region: pass --region or set {REGION_ENV}"


# ClientError codes -> what to do about them. The AWS message is kept in front.
_CODE_ADVICE: dict[str, str] = {
    "ExpiredToken": "your credentials expired: refresh them (aws sso login, or new keys)",
    "ExpiredTokenException": "your credentials expired: refresh them (aws sso login, or new keys)",
    "InvalidClientTokenId": "the access key is not valid in this partition/region: check --profile and --region",
    "UnrecognizedClientException": "the access key is not valid in this partition/region: check --profile and --region",
    "AccessDenied": "your role lacks this permission: ask for it, or use another --profile",
    "AccessDeniedException": "your role lacks this permission: ask for it, or use another --profile",
    "TargetNotConnected": (
        "the node is not connected to SSM: wait until `hpctl status` shows it Running, "
        "and check its subnet can reach SSM (NAT gateway or VPC endpoints)"
    ),
    "ValidationError": "check the stack name (--stack) and --region",
    "NoSuchBucket": "check --bucket (or the stack's BucketName output) and --region",
}


@dataclass
class Aws:
    """A boto3 session plus a client cache, so a command asks for each client once."""

    session: boto3.Session
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(cls, region: str | None = None, profile: str | None = None) -> Aws:
        import boto3

        with aws_errors():
            return cls(boto3.Session(region_name=region, profile_name=profile))

    @property
    def region(self) -> str:
        if not self.session.region_name:
            raise HpctlError(NO_REGION)
        return self.session.region_name

    @property
    def region_or_none(self) -> str | None:
        """The region when one is configured, for what works without one (the price table)."""
        return self.session.region_name or None

    @property
    def profile(self) -> str | None:
        """The profile named explicitly (None for the default chain), for `aws` argv."""
        name = self.session.profile_name
        return None if name == "default" else name

    def client(self, service: str) -> Any:
        if service not in self._clients:
            with aws_errors():
                self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]


def is_aws_error(exc: BaseException) -> bool:
    """Whether exc is one of botocore's errors. Without botocore imported it cannot be (an exception is
    an instance of a class its module defines), so this never imports botocore itself."""
    bce = sys.modules.get("botocore.exceptions")
    return bce is not None and isinstance(exc, bce.BotoCoreError | bce.ClientError)


def explain(exc: Exception) -> str:
    """One line saying what failed and what to do, for any botocore exception."""
    import botocore.exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return "no AWS credentials found: run `aws configure` or `aws sso login`, or pass --profile"
    if isinstance(exc, bce.ProfileNotFound):
        return f"{exc}: check --profile against ~/.aws/config"
    if isinstance(exc, bce.NoRegionError):
        return NO_REGION
    if isinstance(exc, bce.EndpointConnectionError):
        return f"{exc}: check --region (is the service offered there?) and your network"
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip()
        advice = _CODE_ADVICE.get(code)
        if code == "ValidationException" and "Could not find cluster" in message:
            advice = "check the cluster name and --region (`aws sagemaker list-clusters` lists them)"
        line = f"{code}: {message}" if message else code
        return f"{line} — {advice}" if advice else line
    return str(exc)


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore exceptions raised inside the block into HpctlError."""
    try:
        yield
    except Exception as exc:
        if is_aws_error(exc):
            raise HpctlError(explain(exc)) from exc
        transfer = sys.modules.get("boto3.exceptions")
        if transfer is not None and isinstance(exc, transfer.S3UploadFailedError):
            cause = exc.__context__  # boto3's transfer wraps the ClientError that says why
            raise HpctlError(f"upload failed: {explain(cause) if isinstance(cause, Exception) else exc}") from exc
        raise

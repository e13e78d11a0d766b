"""Shell access over SSM: the session target, the `aws ssm start-session` argv, ~/.ssh/config.

HyperPod nodes have no public address and no inbound port; SSM reaches them as
`sagemaker-cluster:<cluster-id>_<group>-<instance-id>`. Plain ssh/scp/VS Code
reach them through a ProxyCommand that opens an AWS-StartSSHSession tunnel.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hpctl.aws import Aws, HpctlError, aws_errors

# The SSM document that tunnels a TCP port (what ProxyCommand needs).
SSH_TUNNEL_DOCUMENT = "AWS-StartSSHSession"

# What `hpctl ssh` execs, and where to get each.
REQUIRED_TOOLS = {
    "aws": "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
    "session-manager-plugin": (
        "install the Session Manager plugin: https://docs.aws.amazon.com/systems-manager/latest/userguide/"
        "session-manager-working-with-install-plugin.html"
    ),
}

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SsmTarget:
    cluster_id: str
    group: str
    instance_id: str

    def __str__(self) -> str:
        return f"sagemaker-cluster:{self.cluster_id}_{self.group}-{self.instance_id}"


@dataclass(frozen=True)
class AwsCliScope:
    """The region/profile the exec'd `aws` must use: the same ones hpctl used."""

    region: str
    profile: str | None = None

    def args(self) -> list[str]:
        extra = ["--region", self.region]
        return [*extra, "--profile", self.profile] if self.profile else extra


def require_tools(which: Callable[[str], str | None]) -> None:
    for tool, hint in REQUIRED_TOOLS.items():
        if which(tool) is None:
            raise HpctlError(f"{tool} is not on PATH: {hint}")


def start_session_argv(target: SsmTarget, scope: AwsCliScope, document: str | None = None) -> list[str]:
    """An interactive shell; `document` starts it as the cluster's default user."""
    argv = ["aws", "ssm", "start-session", "--target", str(target)]
    if document:
        argv += ["--document-name", document]
    return argv + scope.args()


def check_reachable(aws: Aws, target: SsmTarget, document: str | None = None) -> None:
    """Open and close a session through the API first: a node SSM cannot reach fails here with
    one clear line (TargetNotConnected), not inside the exec'd CLI's output."""
    kwargs = {"Target": str(target)}
    if document:
        kwargs["DocumentName"] = document
    ssm = aws.client("ssm")
    with aws_errors():
        session_id = ssm.start_session(**kwargs)["SessionId"]
        ssm.terminate_session(SessionId=session_id)


def proxy_command(target: SsmTarget, scope: AwsCliScope) -> str:
    """The ProxyCommand line; ssh substitutes %p with the port."""
    words = [
        "aws", "ssm", "start-session", "--target", str(target),
        "--document-name", SSH_TUNNEL_DOCUMENT, "--parameters", "portNumber=%p", *scope.args(),
    ]  # fmt: skip
    return " ".join(words)


def _markers(alias: str) -> tuple[str, str]:
    return f"# >>> hpctl {alias} >>>", f"# <<< hpctl {alias} <<<"


def config_block(alias: str, target: SsmTarget, scope: AwsCliScope, user: str) -> str:
    """A Host entry between markers, so a later run can find and replace it."""
    if not _ALIAS.match(alias):
        raise HpctlError(f"--alias {alias!r} is not a usable ssh host name (letters, digits, . _ -)")
    begin, end = _markers(alias)
    return "\n".join(
        [
            begin,
            f"Host {alias}",
            f"    User {user}",
            f"    ProxyCommand {proxy_command(target, scope)}",
            "    ServerAliveInterval 60",
            end,
            "",
        ]
    )


def merge_config(existing: str, alias: str, block: str) -> str:
    """`existing` with hpctl's block for `alias` replaced (or appended once)."""
    begin, end = _markers(alias)
    kept: list[str] = []
    inside = False
    for line in existing.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == begin:
            inside = True
        elif stripped == end and inside:
            inside = False
        elif not inside:
            if re.match(rf"^\s*host\s+(.*\s)?{re.escape(alias)}(\s|$)", line, re.IGNORECASE):
                raise HpctlError(
                    f"your ssh config already has a 'Host {alias}' entry that hpctl did not write: "
                    "remove it, or pick another --alias"
                )
            kept.append(line)
    if inside:
        raise HpctlError(f"your ssh config has '{begin}' without '{end}': fix the file by hand")
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    if text and not text.endswith("\n\n"):
        text += "\n"
    return text + block


def write_config(path: Path, alias: str, block: str) -> None:
    """Replace hpctl's block in `path` atomically (temp file + rename), keeping the file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    merged = merge_config(existing, alias, block)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".hpctl")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(merged)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

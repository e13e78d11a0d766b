"""Shell access over SSM: the session target, the `aws ssm start-session` argv, ~/.ssh/config.

HyperPod nodes have no public address and no inbound port; SSM reaches them as
`sagemaker-cluster:<cluster-id>_<group>-<instance-id>`. Plain ssh/scp/VS Code
reach them through a ProxyCommand that opens an AWS-StartSSHSession tunnel.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hpctl.aws import Aws, HpctlError, UsageError, aws_errors

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


def check_alias(alias: str) -> None:
    if not _ALIAS.match(alias):
        raise UsageError(f"--alias {alias!r} is not a usable ssh host name (letters, digits, . _ -)")


def config_file(path: Path) -> Path:
    """The file `--ssh-config` names, through any symlink; a directory is refused before anything else."""
    target = path.expanduser().resolve()
    if target.is_dir():
        raise UsageError(f"--ssh-config {path} is a directory: name the ssh config file (e.g. ~/.ssh/config)")
    return target


def config_block(alias: str, target: SsmTarget, scope: AwsCliScope, user: str) -> str:
    """A Host entry between markers, so a later run can find and replace it."""
    check_alias(alias)
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


def _applies_to(line: str, alias: str) -> bool:
    """Whether a `Host`/`Match` line starts a block whose settings could apply to `alias`. ssh takes the
    first value it reads for each setting, so hpctl's block must come before such a block (e.g. `Host *`)."""
    match = re.match(r"^\s*(host|match)\s+(.*)$", line, re.IGNORECASE)
    if match is None:
        return False
    if match.group(1).lower() == "match":
        return True  # its criteria are evaluated at connect time: assume it may apply
    patterns = match.group(2).split()
    return any(fnmatch.fnmatchcase(alias, p) for p in patterns if not p.startswith("!")) and not any(
        fnmatch.fnmatchcase(alias, p[1:]) for p in patterns if p.startswith("!")
    )


def merge_config(existing: str, alias: str, block: str) -> str:
    """`existing` with hpctl's block for `alias` replaced (or added once), placed before the first block
    that also applies to `alias` (such as `Host *`), so its settings are the ones ssh uses."""
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
                raise UsageError(
                    f"your ssh config already has a 'Host {alias}' entry that hpctl did not write: "
                    "remove it, or pick another --alias"
                )
            kept.append(line)
    if inside:
        raise UsageError(f"your ssh config has '{begin}' without '{end}': fix the file by hand")
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    at = next((i for i, line in enumerate(kept) if _applies_to(line, alias)), len(kept))
    before, after = "".join(kept[:at]), "".join(kept[at:])
    if before and not before.endswith("\n\n"):
        before += "\n"
    return before + block + ("\n" + after if after else "")


def write_config(path: Path, alias: str, block: str) -> Path:
    """Replace hpctl's block in `path` atomically (temp file + rename), keeping the file's mode. A symlinked
    config (dotfiles repositories do that) is written through the link, which stays a link. Returns the
    file written."""
    target = config_file(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        existing = target.read_text() if target.exists() else ""
    except UnicodeDecodeError:
        raise UsageError(f"--ssh-config {path} is not a text file: name the ssh config file") from None
    merged = merge_config(existing, alias, block)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".hpctl")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(merged)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target

"""CloudFormation custom resource: fails a stack update that changes a create-only setting
before anything is replaced (every resource such a change replaces waits for this one), so
a mistaken `-c cluster_name=...` stops at once instead of halfway through."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

ALLOW_FLAG = "allow_replacement"


def decide(event: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) for one request; only an update that changes a setting fails."""
    new = event["ResourceProperties"]
    if event["RequestType"] != "Update" or new.get("AllowReplacement") == "true":
        return "SUCCESS", ""
    before = event.get("OldResourceProperties", {}).get("Settings", {})
    after = new.get("Settings", {})
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    if not changed:
        return "SUCCESS", ""
    what = "; ".join(f"{key} {before.get(key, '')!r} -> {after.get(key, '')!r}" for key in changed)
    return "FAILED", (
        f"create-only setting changed ({what}): this would replace the cluster, FSx, the network "
        f"or the bucket. Put it back, or deploy with -c {ALLOW_FLAG}=true (README: Updates)"
    )


def handler(event: dict[str, Any], context: Any) -> None:
    status, reason = "FAILED", "internal error"
    try:
        status, reason = decide(event)
    except Exception as exc:  # an answer must always go back, or the stack waits an hour
        reason = f"{type(exc).__name__}: {exc}"
        if event.get("RequestType") == "Delete":
            status = "SUCCESS"
    respond(event, context, status, reason)


def respond(event: dict[str, Any], context: Any, status: str, reason: str) -> None:
    body = {
        "Status": status,
        "Reason": reason or f"see {getattr(context, 'log_stream_name', 'the logs')}",
        "PhysicalResourceId": event.get("PhysicalResourceId") or "create-only-guard",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()

"""CloudFormation custom resource: fails a stack update that changes a create-only setting
before anything is replaced (every resource such a change replaces waits for this one), so
a mistaken `-c cluster_name=...` stops at once instead of halfway through.

The physical id records the settings last accepted, so the rollback of a refused update
(which brings the accepted settings back) passes, and an allowed change gets a new id
(CloudFormation then treats it as a replacement and never rolls it back by an update)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

ALLOW_FLAG = "allow_replacement"
ID_PREFIX = "create-only-guard:"


def physical_id(settings: dict[str, str]) -> str:
    return ID_PREFIX + json.dumps(settings, sort_keys=True, separators=(",", ":"))


def accepted(event: dict[str, Any]) -> dict[str, str]:
    recorded = str(event.get("PhysicalResourceId", ""))
    if recorded.startswith(ID_PREFIX):
        return dict(json.loads(recorded[len(ID_PREFIX) :]))
    return dict(event.get("OldResourceProperties", {}).get("Settings", {}))


def decide(event: dict[str, Any]) -> tuple[str, str, str]:
    """(status, reason, physical id) for one request; only an update that changes a
    create-only setting, without the allow flag, fails."""
    if event["RequestType"] == "Delete":
        return "SUCCESS", "", str(event.get("PhysicalResourceId", ID_PREFIX))
    properties = event["ResourceProperties"]
    after = dict(properties.get("Settings", {}))
    if event["RequestType"] == "Create":
        return "SUCCESS", "", physical_id(after)
    before = accepted(event)
    if after == before:
        return "SUCCESS", "", str(event["PhysicalResourceId"])
    if properties.get("AllowReplacement") == "true":
        return "SUCCESS", "", physical_id(after)
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    what = "; ".join(f"{key} {before.get(key, '')!r} -> {after.get(key, '')!r}" for key in changed)
    reason = (
        f"create-only setting changed ({what}): this would replace the cluster, FSx, the network "
        f"or the bucket. Put it back, or deploy with -c {ALLOW_FLAG}=true (README: Updates)"
    )
    return "FAILED", reason, str(event["PhysicalResourceId"])


def handler(event: dict[str, Any], context: Any) -> None:
    status, reason, resource_id = "FAILED", "internal error", str(event.get("PhysicalResourceId", ID_PREFIX))
    try:
        status, reason, resource_id = decide(event)
    except Exception as exc:  # an answer must always go back, or the stack waits an hour
        reason = f"{type(exc).__name__}: {exc}"
        if event.get("RequestType") == "Delete":
            status = "SUCCESS"
    respond(event, status, reason, resource_id)


def respond(event: dict[str, Any], status: str, reason: str, resource_id: str) -> None:
    body = {
        "Status": status,
        "Reason": reason or "ok",
        "PhysicalResourceId": resource_id,
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

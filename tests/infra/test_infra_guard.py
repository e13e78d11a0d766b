"""The create-only guard: an update that changes a create-only setting fails at the guard,
before CloudFormation replaces the cluster, FSx, the network or the bucket. Its handler
runs here for real, answering a local HTTP server as it answers CloudFormation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from infra_template import only

from infra.config import CREATE_ONLY_SETTINGS, ClusterConfig, ConfigError
from infra.create_only_guard import index

SETTINGS = {"cluster_name": "trn1-lora", "vpc_cidr": "10.0.0.0/16", "availability_zone_id": ""}


def _event(
    kind: str, before: dict[str, str] | None, after: dict[str, str], allow: str = "false", recorded: str = ""
) -> dict[str, Any]:
    """A request as CloudFormation sends it; `recorded` is the physical id (by default the
    one the guard gave `before`)."""
    event: dict[str, Any] = {
        "RequestType": kind,
        "ResourceProperties": {"Settings": after, "AllowReplacement": allow},
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/HyperPodTrnLora/x",
        "RequestId": "r-1",
        "LogicalResourceId": "CreateOnlyGuard",
        "ResponseURL": "",
    }
    if before is not None:
        event["OldResourceProperties"] = {"Settings": before}
        event["PhysicalResourceId"] = recorded or index.physical_id(before)
    return event


def test_an_update_changing_a_create_only_setting_fails_naming_it_and_the_way_out() -> None:
    status, reason, resource_id = index.decide(_event("Update", SETTINGS, {**SETTINGS, "cluster_name": "trn1-other"}))

    assert (status, resource_id) == ("FAILED", index.physical_id(SETTINGS))
    assert "cluster_name 'trn1-lora' -> 'trn1-other'" in reason
    assert "-c allow_replacement=true" in reason


@pytest.mark.parametrize(
    "event",
    [
        _event("Create", None, SETTINGS),
        _event("Update", SETTINGS, SETTINGS),
        _event("Update", SETTINGS, {**SETTINGS, "vpc_cidr": "10.1.0.0/16"}, allow="true"),
        _event("Delete", SETTINGS, SETTINGS),
    ],
    ids=["create", "unchanged", "allowed", "delete"],
)
def test_everything_else_passes(event: dict[str, Any]) -> None:
    assert index.decide(event)[:2] == ("SUCCESS", "")


def test_the_rollback_of_a_refused_update_passes() -> None:
    """CloudFormation rolls the guard back with the settings swapped; its physical id
    still records the accepted ones, which the rollback brings back."""
    changed = {**SETTINGS, "cluster_name": "trn1-other"}
    rollback = _event("Update", changed, SETTINGS, recorded=index.physical_id(SETTINGS))

    assert index.decide(rollback)[:2] == ("SUCCESS", "")


def test_an_allowed_change_records_the_new_settings_as_a_new_physical_id() -> None:
    changed = {**SETTINGS, "vpc_cidr": "10.1.0.0/16"}
    _, _, resource_id = index.decide(_event("Update", SETTINGS, changed, allow="true"))

    assert resource_id == index.physical_id(changed) != index.physical_id(SETTINGS)
    assert index.decide(_event("Update", changed, changed, recorded=resource_id))[0] == "SUCCESS"


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for the presigned S3 URL CloudFormation waits on."""
    answers: list[dict[str, Any]] = []

    class Answer(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", answers
    server.shutdown()


def test_the_handler_answers_cloudformation_with_the_failure(
    cloudformation: tuple[str, list[dict[str, Any]]],
) -> None:
    url, answers = cloudformation
    event = {**_event("Update", SETTINGS, {**SETTINGS, "availability_zone_id": "usw2-az4"}), "ResponseURL": url}

    index.handler(event, None)

    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert "availability_zone_id '' -> 'usw2-az4'" in answer["Reason"]
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("r-1", "CreateOnlyGuard")


def test_a_request_the_guard_cannot_read_is_still_answered(
    cloudformation: tuple[str, list[dict[str, Any]]],
) -> None:
    """No answer would leave the stack waiting an hour for the custom resource."""
    url, answers = cloudformation
    event = {**_event("Update", SETTINGS, SETTINGS), "ResponseURL": url}
    event["PhysicalResourceId"] = index.ID_PREFIX + "{not json"

    index.handler(event, None)

    assert answers[0]["Status"] == "FAILED"
    assert answers[0]["Reason"].startswith("JSONDecodeError")


def test_the_guard_holds_every_create_only_setting(template: dict[str, Any]) -> None:
    _, guard = only(template, "Custom::CreateOnlyGuard")
    config = ClusterConfig()

    assert guard["Properties"]["Settings"] == {
        key: "" if getattr(config, key) is None else str(getattr(config, key)) for key in CREATE_ONLY_SETTINGS
    }
    assert guard["Properties"]["AllowReplacement"] == "false"


def test_the_handler_fits_inline_lambda_code() -> None:
    """Code.from_inline takes at most 4 KiB of Python."""
    assert len(index.__loader__.get_data(index.__file__)) <= 4096  # type: ignore[union-attr]


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("False", False), (True, True)])
def test_allow_replacement_reads_true_and_false(raw: Any, value: bool) -> None:
    assert ClusterConfig.from_mapping({"allow_replacement": raw}).allow_replacement is value


def test_allow_replacement_refuses_anything_else() -> None:
    with pytest.raises(ConfigError, match="must be true or false") as error:
        ClusterConfig.from_mapping({"allow_replacement": "yes"})

    assert error.value.key == "allow_replacement"

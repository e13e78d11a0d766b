"""Finding resources in a synthesized template by type (logical ids are never hard-coded)."""

from __future__ import annotations

from typing import Any


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    """The logical id and body of the one resource of a type."""
    (item,) = resources(template, resource_type).items()
    return item

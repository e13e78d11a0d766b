"""Finding resources in a synthesized template by type (logical ids are never hard-coded)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    """The logical id and body of the one resource of a type."""
    (item,) = resources(template, resource_type).items()
    return item


def direct_dependencies(template: dict[str, Any], lid: str) -> set[str]:
    """What CloudFormation creates before `lid`: its DependsOn, and every resource its
    properties Ref or GetAtt (Fn::Sub's ${X} and ${X.Attr} included)."""
    body = template["Resources"][lid]
    depends = body.get("DependsOn", [])
    found = {depends} if isinstance(depends, str) else set(depends)
    _collect_references(body.get("Properties", {}), found)
    return found & set(template["Resources"])


def all_dependencies(template: dict[str, Any], lid: str) -> set[str]:
    """Every resource CloudFormation must finish before it starts `lid` (transitively)."""
    seen: set[str] = set()
    todo = [lid]
    while todo:
        for dependency in direct_dependencies(template, todo.pop()) - seen:
            seen.add(dependency)
            todo.append(dependency)
    return seen


def _collect_references(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
            _collect_references(arg, found)
    elif isinstance(value, list):
        for item in value:
            _collect_references(item, found)


def synthesized(tmp_path: Path, **context: str) -> dict[str, Any]:
    """The template `cdk synth -c key=value ...` would write, synthesized in-process."""
    from infra.build import build_app
    from infra.config import ClusterConfig

    app = build_app(context, outdir=str(tmp_path))
    app.synth()
    stack_name = context.get("stack_name", ClusterConfig().stack_name)
    data: dict[str, Any] = json.loads((tmp_path / f"{stack_name}.template.json").read_text())
    return data

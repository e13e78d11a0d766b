"""Turn a synthesized CloudFormation template's tokens into concrete values, so the
properties infra/ produces (the cluster's, FSx's) can be sent unchanged to the real
API shapes in moto. Used by the infra and hpctl tests.

Only the intrinsics CDK emits for this stack are understood; anything else fails
loudly with the token, so a template change shows up here as a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def pseudo_parameters(region: str, account: str, stack_name: str = "HyperpodTrainiumLora",
                      create: str = "0a1b2c3d-0000-4000-8000-00000000abcd") -> dict[str, str]:
    """CloudFormation's pseudo parameters for one create (`create`: the stack id's UUID) of a stack."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{create}",
    }


@dataclass(frozen=True)
class Physical:
    """What a resource resolves to: `ref` for Ref, `attrs` for Fn::GetAtt."""

    ref: str
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolver:
    template: Mapping[str, Any]
    physical: Mapping[str, Physical]  # logical id -> concrete values
    pseudo: Mapping[str, str]  # AWS::Region, AWS::AccountId, ...

    def resource_ids(self, resource_type: str) -> list[str]:
        return [lid for lid, r in self.template["Resources"].items() if r["Type"] == resource_type]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(lid, attr)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key.startswith("Fn::"):
                raise ValueError(f"intrinsic {key} not understood by the test resolver: {value}")
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template.get("Parameters", {}):
            default = self.template["Parameters"][name].get("Default")
            if default is None:
                raise ValueError(f"parameter {name} has no default")
            return str(default)
        if name not in self.physical:
            raise ValueError(f"Ref {name} ({self._type(name)}) has no concrete value in the test")
        return self.physical[name].ref

    def _get_att(self, lid: str, attr: str) -> str:
        physical = self.physical.get(lid)
        if physical is None or attr not in physical.attrs:
            raise ValueError(f"Fn::GetAtt {lid}.{attr} ({self._type(lid)}) has no concrete value in the test")
        return physical.attrs[attr]

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                return self._get_att(*name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def _type(self, lid: str) -> str:
        return str(self.template["Resources"].get(lid, {}).get("Type", "unknown"))

"""Concrete values for a synthesized template's intrinsics, so resource properties can
be sent to the real API (moto). Only what this stack emits is understood; anything
else fails naming the intrinsic."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Values:
    refs: Mapping[str, str]  # logical id or pseudo parameter -> Ref value
    attrs: Mapping[tuple[str, str], str]  # (logical id, attribute) -> GetAtt value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.refs[arg]
            if key == "Fn::GetAtt":
                return self.attrs[(arg[0], arg[1])]
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(p)) for p in arg[1])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(r"\$\{([^}.]+)\}", lambda m: self.refs[m.group(1)], arg)
            if key.startswith("Fn::"):
                raise ValueError(f"{key} is not understood here: {value}")
        return {k: self.resolve(v) for k, v in value.items()}

"""Command-line parsing shared by the entry points: dataclass flags, optionally over a YAML recipe.

    python -m training.finetune training/recipes/llama3-8b-lora.yaml --max_steps 50

The recipe sets defaults; any flag given on the command line wins. A recipe key
that no dataclass knows is an error naming the key, so a typo cannot silently
fall back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, and the module docstring's examples kept as written."""


def parse(dataclass_types: tuple[type, ...], argv: list[str] | None = None,
          description: str | None = None, prog: str | None = None) -> tuple[Any, ...]:
    """Instances of `dataclass_types` from `argv` (default sys.argv[1:]), a leading *.yaml being a recipe."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(cast(Any, dataclass_types), description=description, prog=prog,
                              formatter_class=_HelpFormatter)
    if argv and argv[0].endswith((".yaml", ".yml")) and not argv[0].startswith("-"):
        recipe = load_recipe(Path(argv.pop(0)), dataclass_types)
        for action in parser._actions:
            if action.dest in recipe:
                action.default = recipe[action.dest]
                action.required = False
    return tuple(parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False))


def load_recipe(path: Path, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path}: expected a mapping of flag names to values")
    known = {f.name for dc in dataclass_types for f in dataclasses.fields(dc)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"recipe {path}: unknown key(s) {', '.join(unknown)}")
    return data


def run_entry_point(dataclass_types: tuple[type, ...], main: Callable[..., Any], *,
                    user_errors: tuple[type[BaseException], ...], prog: str, description: str | None,
                    argv: list[str] | None = None) -> int:
    """Parse the flags and call `main`; an error a user can fix becomes one `error: ...` line and
    exit status 2 (tracebacks are for bugs), so Slurm and HyperPod still see the failure."""
    try:
        main(*parse(dataclass_types, argv, description=description, prog=prog))
    except user_errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

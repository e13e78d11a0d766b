"""Command-line parsing shared by the entry points: dataclass flags, optionally over a YAML recipe.

    python -m training.finetune training/recipes/llama3-8b-lora.yaml --max_steps 50

The recipe sets defaults; any flag given on the command line wins. A recipe key
that no dataclass knows is an error naming the key, so a typo cannot silently
fall back to a default.

Each dataclass field becomes one `--field_name` option (`--field-name` also works), its help
from `field(metadata={"help": ...})` and, optionally, `"choices"`. A field without a default is
required. A bool takes `--flag`, `--flag true|false` (also yes/no, 1/0) and, when it defaults to
true, `--no_flag`. The flags follow the conventions of transformers' HfArgumentParser, built here
with argparse alone so that the light entry points do not pay for importing transformers and torch.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import math
import os
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from training.errors import ArgumentError, UserError, error_path, os_error_advice

_SCALARS: tuple[type, ...] = (str, int, float, bool)
_OPTIONAL_SCALARS: tuple[type, ...] = (str, int, float)  # `X | None`; an optional bool has no meaning here
_METADATA_KEYS = frozenset({"help", "choices"})
_TRUE = frozenset({"true", "yes", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "0", "f", "n"})


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, and the module docstring's examples kept as written."""


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes (unknown flag, bad choice, missing flag) are ArgumentErrors, so that they
    reach the user as the same one `error:` line as every other mistake instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{message} (see {self.prog} --help)")


def parse(dataclass_types: tuple[type, ...], argv: list[str] | None = None,
          description: str | None = None, prog: str | None = None) -> tuple[Any, ...]:
    """Instances of `dataclass_types` from `argv` (default sys.argv[1:]), a leading *.yaml being a recipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe: dict[str, Any] = {}
    if argv and argv[0].endswith((".yaml", ".yml")) and not argv[0].startswith("-"):
        recipe = load_recipe(Path(argv.pop(0)), dataclass_types)
    parser = _build_parser(dataclass_types, defaults=recipe, description=description, prog=prog)
    values = vars(parser.parse_args(argv))
    for name, value in values.items():  # no flag means "not a number" or "infinitely many": refuse it here,
        if isinstance(value, float) and not math.isfinite(value):  # as `x <= 0` checks let nan through
            raise ArgumentError(f"--{name} must be a finite number, got {value}")
        if isinstance(value, str) and "\x00" in value:  # only a recipe can carry one; no path or name may
            raise ArgumentError(f"--{name} contains a NUL character")
    # Constructing each dataclass runs its __post_init__ validation on the parsed values.
    return tuple(dc(**{f.name: values[f.name] for f in _init_fields(dc)}) for dc in dataclass_types)


def _build_parser(dataclass_types: tuple[type, ...], defaults: dict[str, Any] | None = None,
                 description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one option per init field of `dataclass_types`; `defaults`
    (e.g. a recipe) replace the fields' own defaults and satisfy required fields."""
    parser = _Parser(prog=prog, description=description, formatter_class=_HelpFormatter)
    for dc in dataclass_types:
        hints = typing.get_type_hints(dc)
        for f in _init_fields(dc):
            _add_field(parser, dc, f, hints[f.name], (defaults or {}).get(f.name, dataclasses.MISSING))
    return parser


def _init_fields(dc: type) -> list[dataclasses.Field[Any]]:
    if not dataclasses.is_dataclass(dc):
        raise TypeError(f"{dc!r} is not a dataclass")
    return [f for f in dataclasses.fields(dc) if f.init]


def _flag_type(dc: type, f: dataclasses.Field[Any], hint: Any) -> type:
    """The scalar type a flag's text converts to: `hint` itself, or X for `X | None`."""
    if hint in _SCALARS:
        return typing.cast(type, hint)
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        if inner in _OPTIONAL_SCALARS:
            return typing.cast(type, inner)
    raise TypeError(f"{dc.__name__}.{f.name}: no command-line flag for type {hint!r} "
                    f"(supported: str, int, float, bool, or str/int/float | None)")


def _to_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, yes/no or 1/0, got {text!r}")


def _add_field(parser: argparse.ArgumentParser, dc: type, f: dataclasses.Field[Any], hint: Any,
               override: Any) -> None:
    flag_type = _flag_type(dc, f, hint)
    unknown = sorted(set(f.metadata) - _METADATA_KEYS)
    if unknown:
        raise TypeError(f"{dc.__name__}.{f.name}: unsupported field metadata {', '.join(unknown)}")
    names = [f"--{f.name}"]
    if "_" in f.name:
        names.append(f"--{f.name.replace('_', '-')}")
    kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help")}
    if "choices" in f.metadata:
        kwargs["choices"] = list(f.metadata["choices"])

    if override is not dataclasses.MISSING:
        default = override
    elif f.default is not dataclasses.MISSING:
        default = f.default
    elif callable(f.default_factory):
        default = f.default_factory()
    else:
        default = dataclasses.MISSING
    if default is dataclasses.MISSING:
        # Nothing to show under "(default: ...)"; argparse itself reports the flag when it is missing.
        kwargs.update(required=True, default=argparse.SUPPRESS)
    else:
        kwargs["default"] = default  # a str default (from a recipe) still goes through `type`

    if flag_type is bool:
        kwargs.update(type=_to_bool, nargs="?", const=True, metavar="{true,false}")
    else:
        kwargs["type"] = flag_type
    parser.add_argument(*names, **kwargs)

    if flag_type is bool and f.default is True:
        parser.add_argument(f"--no_{f.name}", f"--no-{f.name.replace('_', '-')}", dest=f.name,
                            action="store_false", default=argparse.SUPPRESS, help=f"Same as --{f.name} false.")


def load_recipe(path: Path, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ArgumentError(f"recipe {path}: no such file; check the path (the recipe is the first argument)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArgumentError(f"recipe {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ArgumentError(f"recipe {path}: expected a mapping of flag names to values")
    known = {f.name for dc in dataclass_types for f in dataclasses.fields(dc)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ArgumentError(f"recipe {path}: unknown key(s) {', '.join(unknown)} "
                            f"(keys are the flag names of --help, e.g. {sorted(known)[0]})")
    return data


def run_entry_point(dataclass_types: tuple[type, ...], main: Callable[..., Any], *, prog: str,
                    description: str | None, argv: list[str] | None = None) -> int:
    """Parse the flags and call `main`: the one error policy of every `python -m training.<name>`.

    A UserError, or an OSError a user can fix (permission, missing path, read-only or full disk), becomes
    one `error: ...` line and exit status 2, naming the flag whose path it concerns; anything else is a bug
    and keeps its traceback. (SIGTERM during an atomic output is training.fsio.sigterm_as_exit's.)
    """
    atexit.unregister(_skip_final_collections)  # once, however often a process calls this
    atexit.register(_skip_final_collections)
    args: tuple[Any, ...] = ()
    try:
        args = parse(dataclass_types, argv, description=description, prog=prog)
        main(*args)
    except UserError as err:
        return _report(str(err))
    except OSError as err:
        advice = os_error_advice(err)
        if advice is None:
            raise
        flag = _flag_for(err, args)
        return _report(f"{flag} {advice}" if flag else advice)
    return 0


def _skip_final_collections() -> None:
    """Hide every object left at exit from the garbage collector.

    As the interpreter exits, CPython collects garbage while it tears the modules down, walking every object
    still alive; with torch and transformers loaded that is ~2 s of CPU per process, spent after the work is
    done (measured here: 2.2 s from the last atexit handler to the exit of a process that only imported them,
    0.2 s with them frozen). Nothing is lost: outputs are written, closed and renamed before main returns, and
    CPython never promised to finalize the objects still alive at exit.
    """
    gc.freeze()


def _report(message: str) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr, flush=True)  # one line, whatever the message
    return 2


def _flag_for(err: OSError, args: tuple[Any, ...]) -> str | None:
    """`--name` of the flag whose path the error is about (the path itself or a file under it), if any."""
    path = error_path(err)
    if path is None:
        return None
    failed = Path(os.path.realpath(path))  # realpath: a symlink loop must not turn advice into a traceback
    for parsed in args:
        for f in dataclasses.fields(parsed):
            value = getattr(parsed, f.name)
            if isinstance(value, str) and value:
                given = Path(os.path.realpath(value))
                if failed == given or given in failed.parents:
                    return f"--{f.name}"
    return None


"""The seam between the bootstrap and the machine: every external command goes through a Runner.

SubprocessRunner runs commands for real. RecordingRunner records what would run and
answers from a script, so the whole bootstrap can be exercised against a fake root
on a machine without FSx, systemd or Neuron devices (tests, and on_create.sh's dry run).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
    Protocol = object  # type: ignore[assignment]


@dataclass(frozen=True)
class Result:
    argv: Sequence[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(RuntimeError):
    """A command that had to succeed did not; carries its output for the log."""

    def __init__(self, result: Result) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        super().__init__(
            f"`{shlex.join(result.argv)}` exited {result.returncode}"
            + (": " + " | ".join(detail) if detail else "")
        )
        self.result = result


class Runner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        quiet: bool = False,
    ) -> Result:
        """Run argv; raise CommandError when check and it fails.

        The command and its output go to the log unless quiet; stdin never does.
        """
        ...


class SubprocessRunner:
    """Runs commands for real and echoes them (and their output) into the provisioning log."""

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        quiet: bool = False,
    ) -> Result:
        if not quiet:
            print(f"+ {shlex.join(argv)}", flush=True)
        try:
            proc = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, check=False
            )
        except FileNotFoundError:
            result = Result(argv, 127, "", f"{argv[0]}: command not found")
        else:
            result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        if not quiet:
            for stream in (result.stdout, result.stderr):
                if stream.strip():
                    sys.stdout.write(stream if stream.endswith("\n") else stream + "\n")
            sys.stdout.flush()
        if check and not result.ok:
            raise CommandError(result)
        return result


class RecordingRunner:
    """Records every command and answers from scripted rules instead of running it.

    A rule is {"argv": [prefix...], "results": [{"rc": 0, "stdout": "..."}, ...]}:
    the first rule whose argv is a prefix of the command answers, its results used in
    order and the last one repeated. Unmatched commands succeed with no output.
    Commands whose program is in `passthrough` run for real (e.g. ssh-keygen writing
    into the fake root).
    """

    def __init__(
        self,
        rules: Sequence[dict[str, Any]] = (),
        passthrough: Sequence[str] = (),
        record_path: Path | None = None,
    ) -> None:
        self.rules = [dict(rule) for rule in rules]
        self.used: list[int] = [0] * len(self.rules)
        self.passthrough = set(passthrough)
        self.record_path = record_path
        self.calls: list[dict[str, Any]] = []

    @classmethod
    def from_script(cls, script: Path | None, record_path: Path | None) -> RecordingRunner:
        data: dict[str, Any] = {}
        if script is not None:
            data = json.loads(script.read_text(encoding="utf-8"))
        return cls(data.get("rules", ()), data.get("passthrough", ()), record_path)

    @property
    def commands(self) -> list[list[str]]:
        return [list(call["argv"]) for call in self.calls]

    def _answer(self, argv: Sequence[str]) -> Result:
        for i, rule in enumerate(self.rules):
            prefix = list(rule["argv"])
            if list(argv[: len(prefix)]) == prefix:
                results = rule.get("results") or [{}]
                answer = results[min(self.used[i], len(results) - 1)]
                self.used[i] += 1
                return Result(argv, int(answer.get("rc", 0)), answer.get("stdout", ""), answer.get("stderr", ""))
        return Result(argv, 0)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        quiet: bool = False,
    ) -> Result:
        call: dict[str, Any] = {"argv": list(argv)}
        if stdin is not None:
            call["stdin"] = stdin
        self.calls.append(call)
        if self.record_path is not None:
            with self.record_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(call) + "\n")
        if not quiet:
            print(f"+ (recorded) {shlex.join(argv)}", flush=True)
        if argv and Path(argv[0]).name in self.passthrough:
            result = SubprocessRunner().run(argv, check=False, stdin=stdin, quiet=quiet)
        else:
            result = self._answer(argv)
        if check and not result.ok:
            raise CommandError(result)
        return result

"""The pieces under every step: the real command runner, idempotent writes, the shared lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from provision.host import Host, StepError
from provision.runner import CommandError, RecordingRunner, SubprocessRunner


def test_real_runner_returns_output_of_a_command_that_succeeds():
    result = SubprocessRunner().run(["sh", "-c", "echo out; echo err >&2"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")


def test_real_runner_raises_with_the_command_and_its_last_error_lines():
    with pytest.raises(CommandError, match=r"`sh -c 'echo no such module >&2; exit 3'` exited 3: no such module"):
        SubprocessRunner().run(["sh", "-c", "echo no such module >&2; exit 3"])


def test_real_runner_reports_a_missing_program_as_exit_127():
    result = SubprocessRunner().run(["no-such-program-for-lifecycle"], check=False)
    assert result.returncode == 127


def test_real_runner_feeds_stdin_without_logging_it(capsys: pytest.CaptureFixture[str]):
    result = SubprocessRunner().run(["cat"], stdin="secret-password\n")
    assert result.stdout == "secret-password\n"
    assert capsys.readouterr().out.count("secret-password") == 1  # the command's output, not the echo of stdin


def test_write_reports_a_change_only_when_content_or_mode_differ(tmp_path: Path):
    host = Host(tmp_path, RecordingRunner())
    assert host.write("/etc/x.conf", "a=1\n") is True
    assert host.write("/etc/x.conf", "a=1\n") is False
    assert host.write("/etc/x.conf", "a=1\n", mode=0o600) is True
    assert (tmp_path / "etc/x.conf").stat().st_mode & 0o777 == 0o600


def test_owner_is_set_through_the_runner_only_on_change(tmp_path: Path):
    runner = RecordingRunner()
    host = Host(tmp_path, runner)
    host.write("/fsx/f", "x", owner="ubuntu")
    host.write("/fsx/f", "x", owner="ubuntu")
    assert runner.commands == [["chown", "ubuntu:ubuntu", str(tmp_path / "fsx/f")]]


def test_lock_held_by_another_node_times_out_with_a_clear_error(tmp_path: Path):
    host, other = Host(tmp_path, RecordingRunner()), Host(tmp_path, RecordingRunner())
    held = "another node held /fsx/.provision/x.lock for more than 1s"
    with host.lock("/fsx/.provision/x.lock"), pytest.raises(StepError, match=held):
        other.lock("/fsx/.provision/x.lock", timeout=1).__enter__()
    with other.lock("/fsx/.provision/x.lock", timeout=1):
        pass

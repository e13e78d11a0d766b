"""The node as the bootstrap sees it: a root directory, a command runner and a clock.

Every file the bootstrap reads or writes goes through `path()`, so tests point the
root at a temporary directory and the real files land there. Writes only touch a
file when its content or mode differ, and report whether they did: that is what
makes each step idempotent and lets it restart a daemon only on a real change.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from provision.runner import Runner


class StepError(RuntimeError):
    """A step cannot finish; the orchestrator adds the step's name."""


class Host:
    def __init__(
        self,
        root: Path,
        runner: Runner,
        sleep: Callable[[float], None] = time.sleep,
        retry_delay: float = 10.0,
    ) -> None:
        self.root = root
        self.runner = runner
        self.sleep = sleep
        self.retry_delay = retry_delay

    def path(self, p: str) -> Path:
        """Where the absolute node path `p` lives under this host's root."""
        return self.root / p.lstrip("/")

    def read(self, p: str) -> str | None:
        try:
            return self.path(p).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    def write(self, p: str, content: str, mode: int = 0o644, owner: str | None = None) -> bool:
        """Write `content` atomically unless it is already there; chown only on change."""
        target = self.path(p)
        changed = False
        if self.read(p) != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
            tmp.write_text(content, encoding="utf-8")
            os.chmod(tmp, mode)
            os.replace(tmp, target)
            changed = True
        elif (target.stat().st_mode & 0o7777) != mode:
            os.chmod(target, mode)
            changed = True
        if changed:
            print(f"wrote {p}", flush=True)
            if owner:
                self.chown(p, owner)
        return changed

    def mkdir(self, p: str, mode: int = 0o755, owner: str | None = None) -> bool:
        target = self.path(p)
        changed = False
        if not target.is_dir():
            target.mkdir(parents=True)
            changed = True
        if (target.stat().st_mode & 0o7777) != mode:
            os.chmod(target, mode)  # mkdir's mode is masked by the umask
            changed = True
        if changed and owner:
            self.chown(p, owner)
        return changed

    def chown(self, p: str, owner: str, recursive: bool = False) -> None:
        """Through the runner: the owner is a user of the real node, not of the fake root."""
        argv = ["chown"] + (["-R"] if recursive else []) + [f"{owner}:{owner}", str(self.path(p))]
        self.runner.run(argv)

    @contextlib.contextmanager
    def lock(self, p: str, timeout: float = 3600.0) -> Iterator[None]:
        """An flock shared by every node (FSx is mounted with `flock`): one node at a time."""
        target = self.path(p)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as f:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise StepError(f"another node held {p} for more than {timeout:.0f}s") from None
                    time.sleep(1.0)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def retry(self, what: str, attempts: int, attempt: Callable[[], str | None]) -> None:
        """Call `attempt` until it returns None (success) or a reason `attempts` times."""
        reason: str | None = None
        for i in range(1, attempts + 1):
            reason = attempt()
            if reason is None:
                return
            print(f"{what}: attempt {i}/{attempts} failed: {reason}", flush=True)
            if i < attempts:
                self.sleep(self.retry_delay)
        raise StepError(f"{what} failed after {attempts} attempts: {reason}")

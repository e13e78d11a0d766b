"""What counts as a user's mistake, for every `python -m training.<name>` entry point.

A user error is something the person running the command can fix: a bad flag, a path
that is missing or unwritable, a file that is not what it claims to be, a full disk.
training.cli prints it as one `error: ...` line and exits 2. Anything else is our bug
and keeps its traceback, which is why validation raises UserError (or a subclass)
rather than a bare ValueError: catching every ValueError would hide bugs as advice.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class UserError(Exception):
    """A mistake in the command's input, with what to do about it; shown as one `error:` line, exit 2."""


class ArgumentError(UserError, ValueError):
    """A flag value the command refuses (also a ValueError, for code that builds the dataclasses itself)."""


# OS errors about a path the user chose, and what to do about each. Others (EIO, EBADF, ...) stay tracebacks.
_OS_ADVICE: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
    errno.EISDIR: "it is a directory: name a file",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOTEMPTY: "remove it or choose another path",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.ENOSPC: "the file system is full: free space or choose another location",
    errno.EDQUOT: "your disk quota is used up: free space or choose another location",
    errno.EFBIG: "the file system cannot hold a file this large: choose another location",
    errno.ENAMETOOLONG: "shorten the path",
    errno.ELOOP: "the path has a symbolic link loop: check the path",
    errno.EXDEV: "source and destination must be on the same file system",
}


# Errors of writing, not of reading: about the place written to (a copy's destination, not its source).
OUTPUT_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def os_error_advice(exc: OSError) -> str | None:
    """One line for an OSError a user can fix (naming the path), or None for one that is not theirs."""
    advice = _OS_ADVICE.get(exc.errno or 0)
    if advice is None:
        return None
    reason = exc.strerror or os.strerror(exc.errno or 0)
    paths = error_path(exc)
    if not paths:  # e.g. a disk filling up inside a write(): the file is not named, the cause still is
        return f"{reason.lower()}: {advice}"
    return f"{paths}: {reason.lower()}: {advice}"


def error_path(exc: OSError) -> str | None:
    """The path an OSError is about: a failed copy's destination for a write error, else its source."""
    if exc.errno in OUTPUT_ERRNOS and exc.filename2 is not None:
        return str(exc.filename2)
    return None if exc.filename is None else str(exc.filename)


def same_path(a: str, b: str) -> bool:
    """Whether two paths name the same place (os.path.realpath: unlike Path.resolve, never raises on a loop)."""
    return os.path.realpath(a) == os.path.realpath(b)


def require_at_least(args: object, name: str, low: int) -> None:
    """The flag `--name` of `args` (a dataclass of flags) is at least `low`, else an ArgumentError naming it."""
    value = getattr(args, name)
    if value < low:
        raise ArgumentError(f"--{name} must be >= {low}, got {value}")


def require_dir(flag: str, value: str, hint: str = "check the path") -> Path:
    """`value` as an existing directory, else an ArgumentError naming `--flag`."""
    path = Path(value)
    if not path.exists():
        raise ArgumentError(f"--{flag} {value}: no such directory; {hint}")
    if not path.is_dir():
        raise ArgumentError(f"--{flag} {value}: not a directory; {hint}")
    return path


def require_path(flag: str, value: str, hint: str = "check the path") -> Path:
    """`value` as an existing file or directory, else an ArgumentError naming `--flag`."""
    path = Path(value)
    if not path.exists():
        raise ArgumentError(f"--{flag} {value}: no such file or directory; {hint}")
    return path


def require_output_dir(flag: str, value: str) -> Path:
    """`value` as a directory this process can create or write into, checked before any work starts, so a
    bad output location fails at once instead of after hours of training or copying."""
    path = Path(value)
    if path.is_symlink() and not path.exists():
        raise ArgumentError(f"--{flag} {value}: a symbolic link to nothing (dangling, or a loop); remove it or "
                            "choose another path")
    try:
        if path.exists() and not path.is_dir():
            raise ArgumentError(f"--{flag} {value}: exists and is not a directory; name a directory")
        existing = path
        while not existing.exists():  # the nearest ancestor that exists is where the directory gets created
            if existing.parent == existing:
                break
            existing = existing.parent
    except PermissionError as exc:
        raise ArgumentError(f"--{flag} {value}: {exc.filename} cannot be reached by this user (permission "
                            "denied); check the permissions of the directories above it") from exc
    if existing != path and not existing.is_dir():
        raise ArgumentError(f"--{flag} {value}: {existing} is a file, not a directory; check the path")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise ArgumentError(f"--{flag} {value}: {existing} is on a read-only file system; "
                            "choose a writable location")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArgumentError(f"--{flag} {value}: {existing} is not writable by this user; "
                            "check its permissions or choose another location")
    return path

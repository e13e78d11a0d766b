"""Small file-system helpers: write to a temporary path, then rename.

A job killed half-way (HyperPod replaces the node, Slurm times out) must never
leave a file that looks complete but is not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.errors import OUTPUT_ERRNOS, UserError


def _umask() -> int:
    """This process's umask (read, not changed, where /proc shows it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, full_mode: int) -> None:
    """Give a mkstemp/mkdtemp result (0600/0700 whatever the umask) the mode a plain create would have.

    Outputs on the shared file system are read by the user's group (and exported to S3);
    a setgid bit inherited from the parent directory is kept.
    """
    keep = path.stat().st_mode & 0o2000
    os.chmod(path, keep | (full_mode & ~_umask()))


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _as_if_created(Path(tmp), 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json_object(path: Path, error: type[UserError] = UserError) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is `error` naming the file."""
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def move_files_into(src_dir: Path, dest_dir: Path, last: tuple[str, ...] = ()) -> list[str]:
    """Move every file of `src_dir` into `dest_dir` (same file system) by rename, then remove `src_dir`.

    Files named in `last` are moved last, so a reader that waits for them (for
    instance `adapter_config.json`) sees the other files already in place.
    """
    names = sorted(p.name for p in src_dir.iterdir() if p.is_file())
    ordered = [n for n in names if n not in last] + [n for n in last if n in names]
    for name in ordered:
        os.replace(src_dir / name, dest_dir / name)
    shutil.rmtree(src_dir)
    return ordered


class OutputExists(UserError, FileExistsError):
    """The output directory already holds files; nothing is overwritten."""


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM (Slurm's time limit, scancel) raises
    SystemExit(143), so `finally` blocks remove temporary output before the process ends; a second
    SIGTERM during that cleanup is ignored rather than cutting it short. Only around such blocks:
    elsewhere (e.g. torchrun workers stuck in a collective) the default, immediate exit is right."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def atomic_output_dir(output_dir: Path) -> Iterator[Path]:
    """A temp dir beside output_dir, renamed onto it only if the block succeeds; removed on any failure,
    SIGTERM included (sigterm_as_exit)."""
    output_dir = Path(os.path.realpath(output_dir))
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise OutputExists(f"output directory {output_dir} exists and is not an empty directory; "
                           "remove it or choose another")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_as_exit():
        tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
        try:
            _as_if_created(tmp, 0o777)
            yield tmp
            if output_dir.exists():
                output_dir.rmdir()
            tmp.rename(output_dir)
        except OSError as exc:
            if exc.errno in OUTPUT_ERRNOS:  # a full or read-only disk is about the output, not a temporary file
                raise OSError(exc.errno, exc.strerror, str(output_dir)) from exc
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

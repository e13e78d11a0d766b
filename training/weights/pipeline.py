"""Overlap producing blocks of bytes with writing them: one background writer thread, bounded memory.

consolidate and merge read (and merge does arithmetic on) a block of rows while the block before it
goes to disk. The caller's thread produces; a Writer runs the write jobs it is given, in order, on one
thread of its own (the write syscalls, os.preadv and torch's kernels all release the GIL, so the two
stages use two cores). Memory stays bounded: a block lives in a BufferPool buffer, and the pool lends
one only when the writer has given one back, so the producer runs at most `count` blocks ahead.

An error in either stage stops both, leaving the caller to remove the partial output:
- a write that fails (a full disk) is raised in the caller's thread at its next submit (or at finish),
  as it was raised; the jobs still queued are dropped and their buffers given back, so a producer
  waiting for a buffer wakes up to see it;
- an exception in the caller's thread (a truncated input, SIGTERM turned into SystemExit) aborts the
  writer: the queued jobs are dropped and the one running stops at its next chunk (`cancelled`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

Job = Callable[[], None]


class Writer:
    """Runs write jobs in submission order on one background thread, at most `depth` of them waiting."""

    def __init__(self, depth: int = 16) -> None:
        self._jobs: queue.Queue[tuple[Job, Job | None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.cancelled = threading.Event()  # set on abort; a long job checks it between chunks
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                if self._error is None and not self.cancelled.is_set():
                    job()
            except BaseException as exc:  # handed to the producer's thread, which raises it
                self._error = exc
            finally:
                if done is not None:
                    done()

    def submit(self, job: Job, done: Job | None = None) -> None:
        """Queue `job` (blocking while `depth` jobs wait); `done` runs once it has run or been dropped.
        Raises the writer's first error, if a job has failed."""
        self._raise_failure()
        self._jobs.put((job, done))

    def finish(self) -> None:
        """Wait for every job; raises the first one's error, if any failed."""
        self._jobs.put(None)
        self._thread.join()
        self._raise_failure()

    def abort(self) -> None:
        """Drop the queued jobs, stop the running one at its next chunk, and wait for the thread to end."""
        self.cancelled.set()
        self._jobs.put(None)
        self._thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()
            return
        try:
            self.finish()
        except BaseException:  # SIGTERM while waiting: the thread must not outlive the output it writes
            self.abort()
            raise


class BufferPool:
    """At most `count` byte buffers, lent by take() and returned by give(); take() waits for a return when
    all are lent, which is what bounds memory. A buffer grows to the largest size asked of it."""

    def __init__(self, count: int, make: Callable[[int], Any] = lambda n: np.empty(n, dtype=np.uint8)) -> None:
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._make = make
        for _ in range(count):
            self._free.put(None)  # allocated on first use, at the size first asked for

    def take(self, nbytes: int) -> Any:
        """A buffer of at least `nbytes` (its first `nbytes` are the caller's to fill); blocks until one is free."""
        buffer = self._free.get()
        if buffer is None or len(buffer) < nbytes:
            buffer = self._make(nbytes)
        return buffer

    def give(self, buffer: Any) -> None:
        self._free.put(buffer)

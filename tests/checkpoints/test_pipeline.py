"""training.weights.pipeline: a writer thread runs jobs in order, writer lanes run at once, a failure in
any stage stops all, and the buffer pool bounds how far the producer runs ahead."""

from __future__ import annotations

import errno
import threading
import time

import pytest

from training.weights.pipeline import BufferPool, Writer, Writers


def test_jobs_run_in_the_order_submitted_and_each_is_released_once() -> None:
    ran: list[int] = []
    released: list[int] = []
    with Writer(depth=2) as writer:
        for i in range(20):
            writer.submit(lambda i=i: ran.append(i), lambda i=i: released.append(i))
    assert ran == list(range(20))
    assert released == list(range(20))


def test_a_failed_write_is_raised_in_the_producer_and_the_jobs_after_it_never_run() -> None:
    ran: list[int] = []
    released: list[int] = []

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as failure, Writer(depth=4) as writer:
        writer.submit(full_disk)
        for i in range(50):
            writer.submit(lambda i=i: ran.append(i), lambda i=i: released.append(i))
            time.sleep(0.001)
    assert failure.value.errno == errno.ENOSPC
    assert ran == []
    assert released == list(range(len(released)))  # every job that got in was given back, none run
    assert not writer._thread.is_alive()


def test_a_producer_waiting_for_a_buffer_wakes_when_a_write_fails() -> None:
    """The writer gives back the buffers of the jobs it drops, so a producer blocked on a full pool
    gets one and then sees the failure, instead of waiting forever."""
    pool = BufferPool(1)
    gate = threading.Event()

    def fail_later() -> None:
        gate.wait(5)
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"), Writer() as writer:
        buffer = pool.take(16)
        writer.submit(fail_later, lambda: pool.give(buffer))
        gate.set()
        for _ in range(3):
            buffer = pool.take(16)  # returns only because the failed job gave its buffer back
            writer.submit(lambda: None, lambda b=buffer: pool.give(b))


def test_an_error_in_the_producer_stops_the_writer_before_its_queued_jobs() -> None:
    started = threading.Event()
    ran: list[int] = []
    released: list[int] = []

    def slow() -> None:
        started.set()
        time.sleep(0.2)

    with pytest.raises(ValueError, match="truncated input"), Writer(depth=8) as writer:
        writer.submit(slow)
        for i in range(5):
            writer.submit(lambda i=i: ran.append(i), lambda i=i: released.append(i))
        started.wait(5)
        raise ValueError("truncated input")
    assert ran == []
    assert released == list(range(5))
    assert not writer._thread.is_alive()


def test_a_long_job_sees_the_abort_between_its_chunks() -> None:
    chunks: list[int] = []
    started = threading.Event()

    with pytest.raises(KeyboardInterrupt), Writer() as writer:
        def copy_in_chunks() -> None:
            for i in range(1000):
                if writer.cancelled.is_set():
                    return
                chunks.append(i)
                started.set()
                time.sleep(0.001)

        writer.submit(copy_in_chunks)
        started.wait(5)
        raise KeyboardInterrupt
    assert 0 < len(chunks) < 1000


def test_writer_lanes_run_at_once_each_in_its_own_order() -> None:
    both = threading.Barrier(2, timeout=5)  # passes only while a job of each lane runs
    ran: dict[int, list[int]] = {0: [], 1: []}
    with Writers(2, depth=2) as writers:
        for lane in (0, 1):
            writers.lane(lane).submit(both.wait)
        for i in range(20):
            writers.lane(i % 2).submit(lambda i=i: ran[i % 2].append(i))
    assert ran == {0: list(range(0, 20, 2)), 1: list(range(1, 20, 2))}


def test_a_failure_in_one_lane_is_raised_at_the_next_submit_to_another_and_stops_every_lane() -> None:
    failed = threading.Event()
    ran: list[int] = []

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as failure, Writers(2) as writers:
        writers.lane(1).submit(full_disk, failed.set)  # `done` runs once the failure is recorded
        assert failed.wait(5)
        writers.lane(0).submit(lambda: ran.append(0))
    assert failure.value.errno == errno.ENOSPC
    assert ran == []
    assert not any(writers.lane(i)._thread.is_alive() for i in (0, 1))


def test_an_error_in_the_producer_stops_every_lane() -> None:
    started = threading.Semaphore(0)
    ran: list[int] = []

    def slow() -> None:
        started.release()
        time.sleep(0.2)

    with pytest.raises(ValueError, match="truncated input"), Writers(2) as writers:
        for lane in (0, 1):
            writers.lane(lane).submit(slow)
            writers.lane(lane).submit(lambda lane=lane: ran.append(lane))
        assert started.acquire(timeout=5) and started.acquire(timeout=5)
        raise ValueError("truncated input")
    assert ran == []
    assert not any(writers.lane(i)._thread.is_alive() for i in (0, 1))


def test_the_pool_lends_at_most_its_count_of_buffers() -> None:
    pool = BufferPool(2)
    first, second = pool.take(8), pool.take(8)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(8)), daemon=True)
    waiter.start()
    waiter.join(0.2)
    assert got == []  # a third block waits until one is written
    pool.give(first)
    waiter.join(5)
    assert got and got[0] is first
    pool.give(second)
    assert len(pool.take(100)) >= 100  # a buffer grows to what is asked of it

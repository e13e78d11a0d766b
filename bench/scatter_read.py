"""Benchmark: lay 8 ranks' row-parallel slices side by side, by os.preadv scatter or by read + numpy copy.

    .venv/bin/python bench/scatter_read.py

consolidate rebuilds o_proj and down_proj (split on dim 1 across the TP ranks) a 32 MB block of rows
at a time: each rank's rows are contiguous in its file and go into its column slot of every output row.
Two ways: one os.preadv per rank with an iovec per row (at most SC_IOV_MAX per call), straight into the
slots; or one contiguous read per rank into a scratch buffer, then a strided numpy copy into the slots.
Runs at Llama-3-8B's widths over 8 ranks (o_proj: 1 KB per rank and row, down_proj: 3.5 KB) with the
files in the page cache (as in consolidate, where the writer, not the reads, meets the disk), and writes
the median time per block to bench/results/scatter_read.md.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

BLOCK_BYTES = 32 * 1024**2  # training.weights.consolidate.BLOCK_BYTES
RANKS = 8
WIDTHS = {"o_proj (4096 x 4096 bf16)": 4096 * 2 // RANKS, "down_proj (4096 x 14336 bf16)": 14336 * 2 // RANKS}
REPEATS = 15


def scatter(fds: list[int], out: np.ndarray, width: int) -> None:
    most = os.sysconf("SC_IOV_MAX")
    for rank, fd in enumerate(fds):
        rows = list(out[:, rank * width:(rank + 1) * width])
        for first in range(0, len(rows), most):
            os.preadv(fd, rows[first:first + most], first * width)


def read_and_copy(fds: list[int], out: np.ndarray, width: int, scratch: np.ndarray) -> None:
    for rank, fd in enumerate(fds):
        os.preadv(fd, [scratch], 0)
        out[:, rank * width:(rank + 1) * width] = scratch.reshape(len(out), width)


def main() -> None:
    lines = ["| tensor | bytes per rank and row | preadv scatter ms / block | read + copy ms / block |",
             "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, width in WIDTHS.items():
            count = BLOCK_BYTES // (width * RANKS)
            paths = [Path(tmp) / f"rank{r}" for r in range(RANKS)]
            for p in paths:
                p.write_bytes(os.urandom(count * width))
            fds = [os.open(p, os.O_RDONLY) for p in paths]
            out = np.zeros((count, width * RANKS), dtype=np.uint8)
            scratch = np.zeros(count * width, dtype=np.uint8)
            times: dict[str, list[float]] = {"scatter": [], "copy": []}
            for _ in range(REPEATS):  # interleaved, so both see the same machine
                start = time.perf_counter()
                scatter(fds, out, width)
                middle = time.perf_counter()
                read_and_copy(fds, out, width, scratch)
                times["scatter"].append(middle - start)
                times["copy"].append(time.perf_counter() - middle)
            expected = np.concatenate([np.fromfile(p, dtype=np.uint8).reshape(count, width) for p in paths], axis=1)
            assert np.array_equal(out, expected)
            scatter(fds, out, width)
            assert np.array_equal(out, expected)
            for fd in fds:
                os.close(fd)
            lines.append(f"| {label} | {width} | {statistics.median(times['scatter']) * 1e3:.1f} | "
                         f"{statistics.median(times['copy']) * 1e3:.1f} |")
    text = (f"Median of {REPEATS} blocks of {BLOCK_BYTES // 1024**2} MB, {RANKS} ranks, files in the page cache.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "scatter_read.md").write_text("# Row-parallel reassembly: preadv scatter vs read + copy\n\n" + text)


if __name__ == "__main__":
    main()

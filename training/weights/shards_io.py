"""Streaming safetensors, without torch: write tensors one at a time, read them lazily.

Consolidation and merging must hold one tensor (or a block of its rows) at a
time, not the model, so the writer lays out a file's header from shapes known in
advance and then appends each tensor's bytes as they are produced. Bytes that do
not change are copied file to file and never enter Python memory.

Dtypes are safetensors' codes ("BF16", "F32", ...): consolidation never needs
torch, and importing it would cost more than copying a 2 GB model. Torch users
convert at the edge with `torch_rows` and `torch_dtype`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from training.errors import OUTPUT_ERRNOS, UserError
from training.weights.pipeline import Writer, Writers

if TYPE_CHECKING:
    import torch

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
COPY_CHUNK_BYTES = 16 * 1024**2
COPY_RANGE_CHUNK_BYTES = 256 * 1024**2  # one copy_file_range call: a quarter second of disk at most
# shards written at once: one thread copying in the kernel (as `cp -r` does) is bound by its core, not the
# disk (pipeline.Writers has the measurement)
WRITER_LANES = 2

Spec = tuple[str, tuple[int, ...], str]  # tensor name, shape, safetensors dtype
MAX_HEADER_BYTES = 100 * 1024**2  # safetensors' own reader refuses larger headers (HeaderTooLarge)


class SafetensorsError(UserError):
    """An input safetensors file (or its index) that is not what it claims to be; the message names it."""


class NoWeights(SafetensorsError):
    """A model directory without safetensors weights."""


def nbytes(shape: tuple[int, ...], dtype: str) -> int:
    return math.prod(shape) * DTYPE_SIZES[dtype]


def row_bytes(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of one dim-0 row (the whole tensor for a scalar)."""
    return math.prod(shape[1:]) * DTYPE_SIZES[dtype]


def torch_dtype(code: str) -> torch.dtype:
    import torch

    return getattr(torch, TORCH_NAMES[code])


def read_tensor(source: FileRange) -> torch.Tensor:
    """A (small) tensor read whole into memory of its own, e.g. a LoRA A or B."""
    import torch

    buffer = torch.empty(source.nbytes, dtype=torch.uint8)
    source.read_into(buffer.numpy().data)
    return buffer.view(torch_dtype(source.dtype)).view(source.shape)


def dtype_code(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    for code, torch_name in TORCH_NAMES.items():
        if torch_name == name:
            return code
    raise ValueError(f"no safetensors dtype for {dtype}")


@dataclass(frozen=True)
class FileRange:
    """A contiguous tensor's bytes (or a block of its dim-0 rows) in a file."""

    path: Path
    offset: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: str

    def rows(self, start: int, stop: int) -> FileRange:
        step = row_bytes(self.shape, self.dtype)
        return FileRange(self.path, self.offset + start * step, (stop - start) * step,
                         (stop - start, *self.shape[1:]), self.dtype)

    def read_into(self, buffer: memoryview) -> memoryview:
        """The bytes, read into the front of `buffer` (reused by the caller, so no page is zeroed twice)."""
        view = buffer.cast("B")[: self.nbytes]
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.offset)
            got = 0
            while got < self.nbytes:
                done = f.readinto(view[got:])
                if not done:
                    raise SafetensorsError(f"{self.path}: truncated ({got} of {self.nbytes} bytes at {self.offset})")
                got += done
        return view


@dataclass(frozen=True)
class Rows:
    """Consecutive dim-0 rows of a tensor, in memory (a numpy array's or a torch tensor's bytes). `release`,
    if given, runs once the bytes are written (or dropped): it returns a pooled buffer for reuse."""

    shape: tuple[int, ...]
    dtype: str
    data: memoryview
    release: Callable[[], None] | None = None


Part = FileRange | Rows


def torch_rows(tensor: torch.Tensor) -> Rows:
    """A torch tensor as Rows, sharing its memory."""
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    return Rows(tuple(tensor.shape), dtype_code(tensor.dtype), flat.view(torch.uint8).numpy().data)


def _write_all(dst: IO[bytes], data: memoryview) -> None:
    """An unbuffered write may be short; loop until every byte is out."""
    data = data.cast("B")
    while data:
        done = dst.write(data)
        data = data[done or 0:]


def _copy_range(src: FileRange, dst: IO[bytes], cancelled: threading.Event | None = None) -> None:
    """copy_file_range (in-kernel, reflinked where the filesystem can) with a read/write fallback; in chunks,
    so that an aborted write stops within one chunk."""
    with open(src.path, "rb") as f:
        offset, left = src.offset, src.nbytes
        try:
            while left:
                if cancelled is not None and cancelled.is_set():
                    return
                done = os.copy_file_range(f.fileno(), dst.fileno(), min(left, COPY_RANGE_CHUNK_BYTES), offset)
                if done == 0:
                    raise SafetensorsError(f"{src.path}: truncated at byte {offset}")
                offset, left = offset + done, left - done
        except (OSError, AttributeError) as exc:  # other filesystem or kernel without it: copy the rest in user space
            if isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS:
                raise  # a full disk stays a full disk
            f.seek(offset)
            while left:
                chunk = f.read(min(left, COPY_CHUNK_BYTES))
                if not chunk:
                    raise SafetensorsError(f"{src.path}: truncated at byte {offset}") from None
                _write_all(dst, memoryview(chunk))
                offset, left = offset + len(chunk), left - len(chunk)


class SafetensorsStream:
    """One safetensors file whose tensors (names, shapes, dtypes fixed up front) are appended in order."""

    def __init__(self, path: Path, specs: list[Spec]) -> None:
        self.path = path
        self._expected = [(n, tuple(s), d) for n, s, d in specs]
        header: dict[str, Any] = {}
        offset = 0
        for name, shape, dtype in self._expected:
            size = nbytes(shape, dtype)
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        # held open across append calls, closed by close(); unbuffered, so file-to-file copies and
        # writes share one file position
        self._file: IO[bytes] = open(path, "wb", buffering=0)  # noqa: SIM115
        _write_all(self._file, memoryview(struct.pack("<Q", len(raw)) + raw))
        self._next = 0

    def append_parts(self, name: str, parts: Iterable[Part], writer: Writer | None = None) -> None:
        """Write a tensor given as consecutive dim-0 pieces, checked here; the bytes are moved here, or, given
        a writer, by its thread, in order, while the next pieces are produced."""
        want_name, want_shape, want_dtype = self._expected[self._next]
        if name != want_name:
            raise ValueError(f"{self.path.name}: expected tensor {want_name}, got {name}")
        rows = 0
        for part in parts:
            if part.dtype != want_dtype or part.shape[1:] != want_shape[1:] or len(part.shape) != len(want_shape):
                raise ValueError(f"{self.path.name}: {name} piece {part.shape} {part.dtype} does not fit "
                                 f"{want_shape} {want_dtype}")
            if isinstance(part, Rows) and part.data.nbytes != nbytes(part.shape, part.dtype):
                raise ValueError(f"{self.path.name}: {name} piece {part.shape} holds {part.data.nbytes} bytes")
            release = part.release if isinstance(part, Rows) else None
            if writer is None:
                try:
                    self._write(part)
                finally:
                    if release is not None:
                        release()
            else:
                writer.submit(partial(self._write, part, writer.cancelled), release)
            rows += part.shape[0] if part.shape else 1
        if rows != (want_shape[0] if want_shape else 1):
            raise ValueError(f"{self.path.name}: {name} got {rows} rows, expected {want_shape}")
        self._next += 1

    def _write(self, part: Part, cancelled: threading.Event | None = None) -> None:
        if isinstance(part, FileRange):
            _copy_range(part, self._file, cancelled)
        else:
            _write_all(self._file, part.data)

    def close(self, writer: Writer | None = None) -> None:
        """Close the file (after the writer's queued jobs, given one); every tensor must have been appended."""
        if writer is None:
            self._file.close()
        else:
            writer.submit(self._file.close)
        if self._next != len(self._expected):
            raise ValueError(f"{self.path.name}: {len(self._expected) - self._next} tensor(s) never written")


def plan_shards(specs: list[Spec], max_bytes: int) -> list[list[Spec]]:
    """Group tensors in order into shards of at most max_bytes (a larger tensor gets a shard of its own)."""
    shards: list[list[Spec]] = [[]]
    size = 0
    for spec in specs:
        size_of = nbytes(spec[1], spec[2])
        if shards[-1] and size + size_of > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += size_of
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_index(path: Path, weight_map: dict[str, str], total_size: int) -> None:
    path.write_text(json.dumps({"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2))


def write_safetensors(out_dir: Path, specs: list[Spec], parts: Callable[[str], Iterable[Part]], *, desc: str,
                      max_shard_bytes: int | None = None, filename: str = "model.safetensors") -> dict[str, str]:
    """Every tensor of `specs`, in order, its pieces from `parts(name)`, under a progress bar in bytes. With
    max_shard_bytes, shards of at most that (model-0000X-of-0000N.safetensors, with their index, or one
    model.safetensors); without, one file `filename`. Returns tensor name -> file name."""
    from tqdm import tqdm

    if max_shard_bytes is None:
        groups = [(specs, filename)]
    else:
        shards = plan_shards(specs, max_shard_bytes)
        groups = list(zip(shards, shard_names(len(shards)), strict=True))
    total = sum(nbytes(shape, dtype) for _, shape, dtype in specs)
    weight_map: dict[str, str] = {}
    progress = threading.Lock()  # the bar is advanced by whichever lane wrote a tensor's last bytes

    def advance(n: int) -> None:
        with progress:
            bar.update(n)

    # this thread produces the pieces (reads, arithmetic) while the writer threads write the ones before, a
    # file per lane; the bar shows from the second second on, so work that ends (or fails) sooner prints
    # nothing but its result
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, delay=2) as bar, Writers(WRITER_LANES) as writers:
        for index, (group, name) in enumerate(groups):
            writer = writers.lane(index)
            stream = SafetensorsStream(out_dir / name, group)
            for tensor, shape, dtype in group:
                stream.append_parts(tensor, parts(tensor), writer)
                weight_map[tensor] = name
                writer.submit(partial(advance, nbytes(shape, dtype)))
            stream.close(writer)
    if len(groups) > 1:
        write_index(out_dir / "model.safetensors.index.json", weight_map, total)
    return weight_map


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    """(bytes before the data, the header's tensors); the length is checked against the file before it is
    read, so a garbage length is an error naming the file, not a read of exabytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise SafetensorsError(f"{path}: not a safetensors file (its header length {n} exceeds the file's "
                                   f"{size} bytes or the format's {MAX_HEADER_BYTES})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SafetensorsError(f"{path}: not a safetensors file (its header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: not a safetensors file (its header is not a JSON object)")
    header.pop("__metadata__", None)
    return 8 + n, header


def tensor_ranges(path: Path) -> dict[str, FileRange]:
    """Where each tensor of a safetensors file lies; a file shorter than its header says is refused."""
    start, header = _header(path)
    ranges = {}
    for name, info in header.items():
        try:
            shape, dtype, (begin, stop) = tuple(int(d) for d in info["shape"]), info["dtype"], info["data_offsets"]
            begin, stop = int(begin), int(stop)
        except (TypeError, ValueError, KeyError) as exc:
            raise SafetensorsError(f"{path}: {name} has a malformed header entry {info!r}") from exc
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError(f"{path}: {name} has dtype {dtype}, which this tool does not handle")
        if any(d < 0 for d in shape) or not 0 <= begin <= stop or stop - begin != nbytes(shape, dtype):
            raise SafetensorsError(f"{path}: {name} is {list(shape)} {dtype} but spans {stop - begin} bytes")
        ranges[name] = FileRange(path, start + begin, stop - begin, shape, dtype)
    end = max((r.offset + r.nbytes for r in ranges.values()), default=start)
    if path.stat().st_size < end:
        raise SafetensorsError(f"{path}: truncated ({path.stat().st_size} bytes, header says {end})")
    return ranges


def model_tensors(model_dir: Path) -> dict[str, FileRange]:
    """Tensor name -> where it lies, for a model directory (one model.safetensors, or shards and their index)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map: dict[str, str] = dict(json.loads(index.read_text())["weight_map"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SafetensorsError(f"{index}: not a safetensors index (no readable 'weight_map': {exc})") from exc
        ranges: dict[str, FileRange] = {}
        for file in sorted(set(weight_map.values())):
            ranges.update(tensor_ranges(model_dir / file))
        missing = sorted(set(weight_map) - set(ranges))
        if missing:
            raise SafetensorsError(f"{model_dir}: the index names {missing[0]}, which {weight_map[missing[0]]} lacks")
        return {name: ranges[name] for name in weight_map}
    single = model_dir / "model.safetensors"
    if single.is_file():
        return tensor_ranges(single)
    raise NoWeights(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


def copy_side_files(src: Path, dest: Path, skip_suffixes: tuple[str, ...] = (".safetensors", ".pt", ".bin")) -> list[str]:
    """Copy config, tokenizer and generation files (not weights, not directories)."""
    copied = []
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.name.endswith(skip_suffixes) and path.name != "model.safetensors.index.json" \
                and path.name != "done" and not path.name.startswith(("adapter_model", "mp_metadata")):
            shutil.copy2(path, dest / path.name)
            copied.append(path.name)
    return copied

"""Streaming safetensors: write tensors one at a time, read them lazily.

Consolidation and merging must hold one tensor at a time, not the model, so the
writer lays out a file's header from shapes known in advance and then appends
each tensor's bytes as it is produced.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64",
               torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.float64: "F64"}


@dataclass(frozen=True)
class FileRange:
    """A contiguous tensor's bytes in another file: copied file to file, never through Python memory."""

    path: Path
    offset: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype


def _write_all(dst: IO[bytes], data: memoryview) -> None:
    """An unbuffered write may be short; loop until every byte is out."""
    data = data.cast("B")
    while data:
        done = dst.write(data)
        data = data[done or 0:]


def _copy_range(src: FileRange, dst: IO[bytes]) -> None:
    """copy_file_range (in-kernel, reflinked where the filesystem can) with a read/write fallback."""
    with open(src.path, "rb") as f:
        offset, left = src.offset, src.nbytes
        try:
            while left:
                done = os.copy_file_range(f.fileno(), dst.fileno(), left, offset)
                if done == 0:
                    raise ValueError(f"{src.path}: truncated at byte {offset}")
                offset, left = offset + done, left - done
        except (OSError, AttributeError):  # other filesystem or kernel without it: copy what is left in user space
            f.seek(offset)
            while left:
                chunk = f.read(min(left, 16 * 1024**2))
                if not chunk:
                    raise ValueError(f"{src.path}: truncated at byte {offset}") from None
                _write_all(dst, memoryview(chunk))
                offset, left = offset + len(chunk), left - len(chunk)


class SafetensorsStream:
    """One safetensors file whose tensors (names, shapes, dtypes fixed up front) are appended in order."""

    def __init__(self, path: Path, specs: list[tuple[str, tuple[int, ...], torch.dtype]]) -> None:
        self.path = path
        self._expected = [(n, tuple(s), d) for n, s, d in specs]
        header: dict[str, Any] = {}
        offset = 0
        for name, shape, dtype in self._expected:
            size = _numel(shape) * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        # held open across append() calls, closed by close(); unbuffered, so file-to-file copies and
        # writes share one file position
        self._file: IO[bytes] = open(path, "wb", buffering=0)  # noqa: SIM115
        _write_all(self._file, memoryview(struct.pack("<Q", len(raw)) + raw))
        self._next = 0

    def append(self, name: str, tensor: torch.Tensor) -> None:
        want = self._expected[self._next]
        got = (name, tuple(tensor.shape), tensor.dtype)
        if got != want:
            raise ValueError(f"{self.path.name}: expected tensor {want}, got {got}")
        _write_all(self._file, tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)  # no copy
        self._next += 1

    def append_parts(self, name: str, parts: Iterator[torch.Tensor | FileRange]) -> None:
        """Write a tensor given as consecutive dim-0 pieces, one piece in memory at a time (none for a FileRange)."""
        want = self._expected[self._next]
        if name != want[0]:
            raise ValueError(f"{self.path.name}: expected tensor {want[0]}, got {name}")
        rows = 0
        for part in parts:
            if part.dtype != want[2] or tuple(part.shape[1:]) != want[1][1:]:
                raise ValueError(f"{self.path.name}: {name} piece {tuple(part.shape)} {part.dtype} does not fit {want}")
            if isinstance(part, FileRange):
                _copy_range(part, self._file)
            else:
                _write_all(self._file, part.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
            rows += part.shape[0]
        if rows != want[1][0]:
            raise ValueError(f"{self.path.name}: {name} got {rows} rows, expected {want[1][0]}")
        self._next += 1

    def close(self) -> None:
        self._file.close()
        if self._next != len(self._expected):
            raise ValueError(f"{self.path.name}: {len(self._expected) - self._next} tensor(s) never written")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def plan_shards(specs: list[tuple[str, tuple[int, ...], torch.dtype]],
                max_bytes: int) -> list[list[tuple[str, tuple[int, ...], torch.dtype]]]:
    """Group tensors in order into shards of at most max_bytes (a larger tensor gets a shard of its own)."""
    shards: list[list[tuple[str, tuple[int, ...], torch.dtype]]] = [[]]
    size = 0
    for spec in specs:
        nbytes = _numel(spec[1]) * torch.empty((), dtype=spec[2]).element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_index(path: Path, weight_map: dict[str, str], total_size: int) -> None:
    path.write_text(json.dumps({"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2))


def safetensors_files(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> file for a model directory (single file or index)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: model_dir / file for name, file in weight_map.items()}
    single = model_dir / "model.safetensors"
    if single.is_file():
        return {name: single for name in read_header(single)}
    raise FileNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


def read_header(path: Path) -> dict[str, Any]:
    """The safetensors header (name -> dtype/shape/offsets), without reading data."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", raw)
        header: dict[str, Any] = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def copy_side_files(src: Path, dest: Path, skip_suffixes: tuple[str, ...] = (".safetensors", ".pt", ".bin")) -> list[str]:
    """Copy config, tokenizer and generation files (not weights, not directories)."""
    copied = []
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.name.endswith(skip_suffixes) and path.name != "model.safetensors.index.json" \
                and path.name != "done" and not path.name.startswith(("adapter_model", "mp_metadata")):
            shutil.copy2(path, dest / path.name)
            copied.append(path.name)
    return copied

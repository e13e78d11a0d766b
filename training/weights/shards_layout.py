"""The optimum-neuron 0.4.x sharded checkpoint layout, read without neuronx_distributed.

    checkpoint-N/trainer_state.json                          written by the trainer after the weights
    checkpoint-N/shards/model/dp_rank_00_tp_rank_XX_pp_rank_YY.pt   full model
    checkpoint-N/shards/mp_metadata_pp_rank_Y.json
    checkpoint-N/shards/done                                 neuronx_distributed's marker, written last
    checkpoint-N/adapter_<name>/adapter_shards/{model/...pt, mp_metadata_pp_rank_Y.json, done}   LoRA adapter
    checkpoint-N/adapter_<name>/adapter_config.json          already in the original (unfused) module names

Rank files key tensors as peft's get_peft_model_state_dict does (`base_model.model.….lora_A.weight`, no
adapter name); mp_metadata keys them by named_parameters (`….lora_A.<name>.weight`), so names are matched
with the adapter segment removed. A rank file is either a plain torch.save state dict or the xser form: X.pt
holds TensorReference stubs whose tensors live in X.pt.tensors/tensor_<tid>.pt. Both are read by parsing
the zip and its pickle here, with nothing built but state-dict entries (as torch.load's weights_only), so
neither torch nor torch_xla is needed.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpoints import checkpoint_number, newest_first
from training.errors import UserError
from training.weights.shards_io import DTYPE_SIZES, FileRange, row_bytes

RANK_FILE = re.compile(r"dp_rank_(\d+)_tp_rank_(\d+)_pp_rank_(\d+)\.pt$")
XSER_REFERENCE = "torch_xla.utils.serialization.TensorReference"


class CheckpointError(UserError):
    """A checkpoint that cannot be consolidated; the message names the file."""


class TensorReference:
    """Stand-in for torch_xla's stub (only its `tid` is read)."""

    tid: int


@dataclass(frozen=True)
class ShardedCheckpoint:
    root: Path                 # checkpoint-N
    shards_dir: Path           # .../shards or .../adapter_<name>/adapter_shards
    adapter_dir: Path | None   # .../adapter_<name> for an adapter
    rank_files: dict[tuple[int, int], Path]  # (tp, pp) -> file (dp rank 0)
    metadata: dict[int, dict[str, Any]]     # pp -> mp_metadata

    @property
    def tp_size(self) -> int:
        return 1 + max(tp for tp, _ in self.rank_files)

    @property
    def pp_size(self) -> int:
        return 1 + max(pp for _, pp in self.rank_files)


def shards_dirs(root: Path) -> list[Path]:
    """The shard directories of a checkpoint: shards/ (full model) or every adapter_<name>/adapter_shards/."""
    if (root / "shards").is_dir():
        return [root / "shards"]
    return sorted(root.glob("adapter_*/adapter_shards"))


def incomplete_reason(root: Path) -> str | None:
    """Why `root` is not a completely written checkpoint, None if it is.

    neuronx_distributed writes `done` inside the shard directory once every rank has saved; the Neuron
    trainer writes trainer_state.json into checkpoint-N after that."""
    dirs = shards_dirs(root)
    if not dirs:
        return f"{root}: neither shards/ nor adapter_<name>/adapter_shards/"
    for shards in dirs:
        if not (shards / "done").is_file():
            return f"{shards / 'done'}: missing; the checkpoint was not completely written"
    if checkpoint_number(root) >= 0 and not (root / "trainer_state.json").is_file():
        return f"{root / 'trainer_state.json'}: missing; the trainer did not finish this checkpoint"
    return None


def resolve_checkpoint(path: Path) -> Path:
    """`path` itself if it is a checkpoint, else its latest complete checkpoint-N."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory")
    if checkpoint_number(path) >= 0 or shards_dirs(path):
        return path
    candidates = newest_first(path)
    reasons = []
    for cand in candidates:
        reason = incomplete_reason(cand)
        if reason is None:
            return cand
        reasons.append(reason)
    if candidates:
        raise CheckpointError(f"no complete checkpoint-N in {path}; latest: {reasons[0]}")
    return path


def _tp_size(metadata: dict[str, Any]) -> int | None:
    """The TP degree recorded with the sharded parameters (`num_partitions`), None if nothing is sharded."""
    sizes = {int(info["num_partitions"]) for info in metadata.get("parameters", {}).values()
             if info.get("tensor_model_parallel") and "num_partitions" in info}
    return max(sizes) if sizes else None


def open_sharded(root: Path) -> ShardedCheckpoint:
    """Find the shards of `root`, checking the done marker, every rank and every metadata file."""
    dirs = shards_dirs(root)
    if len(dirs) > 1:
        raise CheckpointError(f"{root}: several adapters ({', '.join(a.parent.name for a in dirs)}); expected one")
    reason = incomplete_reason(root)
    if reason is not None:
        raise CheckpointError(reason)
    shards_dir = dirs[0]
    is_adapter = shards_dir.name == "adapter_shards"
    files: dict[tuple[int, int], Path] = {}
    for path in sorted((shards_dir / "model").glob("*.pt")):
        match = RANK_FILE.search(path.name)
        if match and int(match.group(1)) == 0:
            files[(int(match.group(2)), int(match.group(3)))] = path
    if not files:
        raise CheckpointError(f"{shards_dir / 'model'}: no dp_rank_00_tp_rank_XX_pp_rank_YY.pt files")
    tp_size, pp_size = 1 + max(t for t, _ in files), 1 + max(p for _, p in files)
    metadata: dict[int, dict[str, Any]] = {}
    for pp in range(pp_size):
        meta = shards_dir / f"mp_metadata_pp_rank_{pp}.json"
        if not meta.is_file():
            raise CheckpointError(f"{meta}: missing")
        try:
            metadata[pp] = json.loads(meta.read_text())
            if not isinstance(metadata[pp].get("parameters"), dict):
                raise ValueError("no 'parameters' object")
        except ValueError as exc:
            raise CheckpointError(f"{meta}: unreadable ({exc})") from exc
        metadata[pp]["__file__"] = str(meta)
        expected = _tp_size(metadata[pp]) or tp_size
        extra = sorted(tp for tp, p in files if p == pp and tp >= expected)
        if extra:
            raise CheckpointError(f"{files[(extra[0], pp)]}: tensor-parallel rank {extra[0]}, but {meta.name} "
                                  f"splits parameters into {expected} partitions; remove stray rank files "
                                  "or use the checkpoint's own metadata")
        for tp in range(max(expected, tp_size)):
            if (tp, pp) not in files:
                name = f"dp_rank_00_tp_rank_{tp:02d}_pp_rank_{pp:02d}.pt"
                raise CheckpointError(f"{shards_dir / 'model' / name}: missing rank (tp {tp} of {expected})")
    return ShardedCheckpoint(root, shards_dir, shards_dir.parent if is_adapter else None, files, metadata)


SCRATCH_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class _Stored:
    """Where one tensor's bytes lie: `span` is the tensor itself when contiguous, else the part of its storage
    that the strided view reads."""

    span: FileRange
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None  # in elements; None when contiguous


class _StorageRef:
    def __init__(self, key: str, dtype: str) -> None:
        self.key, self.dtype = key, dtype


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


@dataclass(frozen=True)
class _TensorRecord:
    storage: _StorageRef
    offset: int  # in elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _record_tensor(storage: _StorageRef, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                   *_: Any) -> _TensorRecord:
    numbers = (storage_offset, *size, *stride)
    if not isinstance(storage, _StorageRef) or not all(type(n) is int and n >= 0 for n in numbers) \
            or len(size) != len(stride):
        raise pickle.UnpicklingError(f"malformed tensor record (offset {storage_offset!r}, size {size!r}, "
                                     f"stride {stride!r})")
    return _TensorRecord(storage, storage_offset, tuple(size), tuple(stride))


def _parameter_data(data: _TensorRecord, *_: Any) -> _TensorRecord:
    return data


STORAGE_DTYPES = {"BFloat16Storage": "BF16", "HalfStorage": "F16", "FloatStorage": "F32", "DoubleStorage": "F64",
                  "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
                  "ByteStorage": "U8", "BoolStorage": "BOOL"}


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a torch.save file into tensor records (storage key, offset, shape, stride): nothing but the
    pickle is read, and, as with torch.load(weights_only=True), nothing outside a plain state dict is built."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _record_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _parameter_data
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if f"{module}.{name}" == XSER_REFERENCE:
            return TensorReference
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a plain tensor state dict")

    def persistent_load(self, pid: Any) -> _StorageRef:
        _, storage_type, key, _, _ = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage of unknown type {storage_type!r}")
        return _StorageRef(str(key), storage_type.dtype)


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _load_index(path: Path) -> Any:
    """The unpickled contents of a torch.save file, each tensor replaced by a _Stored saying where it lies."""
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            pkl = next((n for n in zf.namelist() if n.endswith("/data.pkl")), None)
            if pkl is None:
                raise ValueError("no data.pkl: not a torch.save zip")
            prefix = pkl.removesuffix("data.pkl")
            data = _IndexUnpickler(io.BytesIO(zf.read(pkl))).load()
            storages: dict[str, tuple[int, int]] = {}  # key -> (byte offset in the file, byte size)
            for info in zf.infolist():
                if info.filename.startswith(prefix + "data/"):
                    if info.compress_type != zipfile.ZIP_STORED:
                        raise ValueError(f"{info.filename} is compressed")
                    raw.seek(info.header_offset)
                    header = raw.read(30)
                    name_len, extra_len = struct.unpack("<HH", header[26:30])
                    storages[info.filename.removeprefix(prefix + "data/")] = (
                        info.header_offset + 30 + name_len + extra_len, info.file_size)
        size = path.stat().st_size
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as exc:
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc

    def stored(record: _TensorRecord) -> _Stored:
        if record.storage.key not in storages:
            raise CheckpointError(f"{path}: unreadable (storage {record.storage.key} is missing)")
        start, storage_bytes = storages[record.storage.key]
        itemsize = DTYPE_SIZES[record.storage.dtype]
        contiguous = record.stride == _contiguous_strides(record.shape) or math.prod(record.shape) <= 1
        elements = math.prod(record.shape) if contiguous else \
            1 + sum((n - 1) * s for n, s in zip(record.shape, record.stride, strict=True))
        if (record.offset + elements) * itemsize > storage_bytes:
            raise CheckpointError(f"{path}: unreadable (a {list(record.shape)} tensor reads past the end of its "
                                  f"{storage_bytes}-byte storage {record.storage.key})")
        span = FileRange(path, start + record.offset * itemsize, elements * itemsize,
                         record.shape if contiguous else (elements,), record.storage.dtype)
        if span.offset + span.nbytes > size:
            raise CheckpointError(f"{path}: unreadable (truncated: the tensor ends at byte "
                                  f"{span.offset + span.nbytes} of {size})")
        return _Stored(span, record.shape, None if contiguous else record.stride)

    if isinstance(data, _TensorRecord):
        return stored(data)
    if isinstance(data, dict):
        return {k: stored(v) if isinstance(v, _TensorRecord) else v for k, v in data.items()}
    return data


class RankFile:
    """One rank's state dict, indexed once (offsets from its zip and pickle; for xser, from each stub's own
    tensor file) and never loaded whole: contiguous tensors are copied file to file, and the rows a caller
    needs in memory are read into one buffer per rank, reused, so memory holds only the rows being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = _load_index(path)
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a state dict, got {type(data).__name__}")
        self._index: dict[str, _Stored] = {}
        for name, value in data.items():
            if isinstance(value, TensorReference):
                tensor_path = path.with_name(path.name + ".tensors") / f"tensor_{value.tid}.pt"
                value = _load_index(tensor_path)
            if not isinstance(value, _Stored):
                raise CheckpointError(f"{path}: entry {name} is a {type(value).__name__}, not a tensor")
            self._index[name] = value
        self._scratch: np.ndarray | None = None

    def names(self) -> list[str]:
        return list(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def shape(self, name: str) -> tuple[tuple[int, ...], str]:
        stored = self._index[name]
        return stored.shape, stored.span.dtype

    def range(self, name: str, rows: tuple[int, int] | None = None) -> FileRange | None:
        """Where `name` (or its dim-0 rows [start, stop)) lies, for a file-to-file copy; None for a strided
        view, which the caller reads with `rows` instead."""
        stored = self._index[name]
        if stored.stride is not None:
            return None
        return stored.span if rows is None else stored.span.rows(*rows)

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Dim-0 rows [start, stop) as a (rows, bytes per row) uint8 array; it lives in this rank's buffer,
        valid until the next read from this rank."""
        stored = self._index[name]
        dtype = stored.span.dtype
        width = row_bytes(stored.shape, dtype) if stored.shape else DTYPE_SIZES[dtype]
        count = stop - start if stored.shape else 1
        if stored.stride is None:
            source = stored.span.rows(start, stop) if stored.shape else stored.span
            return np.asarray(source.read_into(self._buffer(source.nbytes))).reshape(count, width)
        itemsize = DTYPE_SIZES[dtype]
        storage = np.asarray(stored.span.read_into(memoryview(bytearray(stored.span.nbytes))))
        view = np.lib.stride_tricks.as_strided(storage, (*stored.shape, itemsize),
                                               (*(s * itemsize for s in stored.stride), 1), writeable=False)
        return np.ascontiguousarray(view[start:stop]).reshape(count, width)

    def _buffer(self, size: int) -> memoryview:
        """This rank's reusable buffer: fresh pages would be zeroed by the kernel for every read."""
        if self._scratch is None or self._scratch.size < size:
            self._scratch = np.empty(max(size, min(SCRATCH_BYTES, 2 * size)), dtype=np.uint8)
        return self._scratch.data[:size]


LORA_SEGMENT = re.compile(r"\.(lora_(?:embedding_)?[AB])\.([^.]+)(?=\.|$)")
SUPPORTED_SPECS = {"FusedLinearsSpec"}


def without_adapter_name(name: str) -> tuple[str, str | None]:
    """`….lora_A.default.weight` -> (`….lora_A.weight`, "default"); other names come back unchanged with None."""
    match = LORA_SEGMENT.search(name)
    if match is None:
        return name, None
    return name[:match.start()] + "." + match.group(1) + name[match.end():], match.group(2)


def parameter_dims(metadata: dict[str, Any], adapter_name: str | None) -> dict[str, int | None]:
    """Rank-file name -> the dimension it is split on across TP ranks (None: replicated).

    For an adapter, only the parameters of `adapter_name` are kept, keyed without the adapter segment."""
    dims: dict[str, int | None] = {}
    for name, info in metadata.get("parameters", {}).items():
        key, adapter = without_adapter_name(name)
        if adapter_name is not None and adapter is not None and adapter != adapter_name:
            continue
        dims[key] = int(info["partition_dim"]) if info.get("tensor_model_parallel", False) else None
    return dims


@dataclass(frozen=True)
class FusedSpec:
    """A module whose fused linear (gate_up_proj) holds, on each rank, its slice of every part along dim 0."""

    module: str
    fused_name: str
    linear_names: tuple[str, ...]
    original_dims: tuple[int, ...]
    tp_size: int


def fused_specs(metadata: dict[str, Any]) -> list[FusedSpec]:
    """The FusedLinearsSpecs of `model_weight_transformation_specs`; any other spec is refused by name."""
    source = metadata.get("__file__", "mp_metadata")
    specs = []
    for entry in metadata.get("model_weight_transformation_specs", []):
        module = entry["module_fully_qualified_name"]
        for cls_name, fields in entry.get("specs", []):
            if cls_name not in SUPPORTED_SPECS:
                raise CheckpointError(
                    f"{source}: {module} uses {cls_name}, which this tool cannot consolidate (optimum-neuron "
                    "uses it when num_key_value_heads < TP size or is not divisible by it: kv heads are repeated "
                    "kv_size_multiplier times and query heads permuted across ranks); consolidate with "
                    "optimum-neuron's consolidate_model_parallel_checkpoints_to_unified_checkpoint instead")
            if fields.get("fuse_axis") not in (0, "column"):
                raise CheckpointError(f"{source}: {module}.{fields['fused_linear_name']} is fused on axis "
                                      f"{fields.get('fuse_axis')!r}; only column (0) fusion is supported")
            specs.append(FusedSpec(module, fields["fused_linear_name"], tuple(fields["linear_names"]),
                                   tuple(int(d) for d in fields["original_dims"]), int(fields["tp_size"])))
    return specs

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
holds TensorReference stubs whose tensors live in X.pt.tensors/tensor_<tid>.pt.
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

import torch

from training.checkpoints import checkpoint_number, newest_first
from training.shards_io import FileRange

RANK_FILE = re.compile(r"dp_rank_(\d+)_tp_rank_(\d+)_pp_rank_(\d+)\.pt$")
XSER_REFERENCE = "torch_xla.utils.serialization.TensorReference"


class CheckpointError(ValueError):
    """A checkpoint that cannot be consolidated; the message names the file."""


class TensorReference:
    """Stand-in for torch_xla's stub (only its `tid` is read)."""

    tid: int


torch.serialization.add_safe_globals([(TensorReference, XSER_REFERENCE)])


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
        for tp in range(max(expected, tp_size)):
            if (tp, pp) not in files:
                name = f"dp_rank_00_tp_rank_{tp:02d}_pp_rank_{pp:02d}.pt"
                raise CheckpointError(f"{shards_dir / 'model' / name}: missing rank (tp {tp} of {expected})")
    return ShardedCheckpoint(root, shards_dir, shards_dir.parent if is_adapter else None, files, metadata)


REMAP_BYTES = 32 * 1024**2
SCRATCH_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class _Entry:
    """Where one contiguous tensor's bytes lie in a torch.save zip."""

    offset: int
    shape: tuple[int, ...]
    dtype: torch.dtype


class _StorageRef:
    def __init__(self, key: str, dtype: torch.dtype) -> None:
        self.key, self.dtype = key, dtype


def _record_tensor(storage: _StorageRef, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                   *_: Any) -> tuple[_StorageRef, int, tuple[int, ...], tuple[int, ...]]:
    return storage, storage_offset, tuple(size), tuple(stride)


STORAGE_DTYPES = {"BFloat16Storage": torch.bfloat16, "HalfStorage": torch.float16, "FloatStorage": torch.float32,
                  "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a torch.save state dict into storage references only: nothing is read but the pickle."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _record_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not a plain tensor state dict entry")

    def persistent_load(self, pid: Any) -> _StorageRef:
        _, dtype, key, _, _ = pid
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"storage of unknown type {dtype!r}")
        return _StorageRef(str(key), dtype)


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _read_index(path: Path) -> dict[str, _Entry] | None:
    """name -> file offset, shape, dtype of every tensor, from one parse of the zip and its pickle; None when
    the file holds anything else (xser stubs, views with odd strides), which the torch.load path handles."""
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            names = zf.namelist()
            pkl = next((n for n in names if n.endswith("/data.pkl")), None)
            if pkl is None:
                return None
            prefix = pkl.removesuffix("data.pkl")
            data = _IndexUnpickler(io.BytesIO(zf.read(pkl))).load()
            if not isinstance(data, dict):
                return None
            offsets: dict[str, int] = {}
            for info in zf.infolist():
                if info.filename.startswith(prefix + "data/") and info.compress_type == zipfile.ZIP_STORED:
                    raw.seek(info.header_offset)
                    header = raw.read(30)
                    name_len, extra_len = struct.unpack("<HH", header[26:30])
                    offsets[info.filename.removeprefix(prefix + "data/")] = info.header_offset + 30 + name_len + extra_len
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
        return None
    index: dict[str, _Entry] = {}
    for name, value in data.items():
        if not isinstance(value, tuple) or len(value) != 4 or not isinstance(value[0], _StorageRef):
            return None
        storage, storage_offset, shape, stride = value
        if storage.key not in offsets or (stride != _contiguous_strides(shape) and math.prod(shape) > 1):
            return None
        itemsize = torch.empty((), dtype=storage.dtype).element_size()
        index[name] = _Entry(offsets[storage.key] + storage_offset * itemsize, shape, storage.dtype)
    return index


class RankFile:
    """One rank's state dict. A plain torch.save file is indexed once (offsets from its zip and pickle) and
    each tensor is read into one reused buffer, so memory holds only the tensors being written. Other files
    (xser) are memory-mapped, the mapping renewed after every REMAP_BYTES served; an xser tensor is loaded
    from its own file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index = _read_index(path)
        self._data: dict[str, Any] | None = None if self._index is not None else self._load()
        self._served = 0
        self._scratch: torch.Tensor | None = None
        self._names = list(self._index if self._index is not None else self._data or {})

    def _load(self) -> dict[str, Any]:
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # torch raises many kinds for a damaged zip/pickle
            raise CheckpointError(f"{self.path}: unreadable ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.path}: expected a state dict, got {type(data).__name__}")
        return data

    def shape(self, name: str) -> tuple[tuple[int, ...], torch.dtype]:
        """Shape and dtype without touching the data (xser: from the tensor file's mapping)."""
        if self._index is not None:
            entry = self._index[name]
            return entry.shape, entry.dtype
        if self._data is None:
            self._data, self._served = self._load(), 0
        t = self[name] if isinstance(self._data[name], TensorReference) else self._data[name]
        return tuple(t.shape), t.dtype

    def names(self) -> list[str]:
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def range(self, name: str, rows: tuple[int, int] | None = None) -> FileRange | None:
        """Where `name` (or its dim-0 rows [start, stop)) lies in this file, for a file-to-file copy; None
        when the file has no index (xser), so the caller reads the tensor instead."""
        if self._index is None:
            return None
        entry = self._index[name]
        start, stop = rows if rows is not None else (0, entry.shape[0] if entry.shape else 1)
        row_bytes = math.prod(entry.shape[1:]) * torch.empty((), dtype=entry.dtype).element_size()
        shape = (stop - start, *entry.shape[1:]) if entry.shape else ()
        return FileRange(self.path, entry.offset + start * row_bytes, (stop - start) * row_bytes, shape, entry.dtype)

    def _read(self, entry: _Entry) -> torch.Tensor:
        """The tensor, in this rank's scratch buffer (up to SCRATCH_BYTES): valid until the next read from this
        rank. Reusing the buffer spares the kernel zeroing fresh pages for every tensor, which cost more than
        the copy; the cap keeps eight ranks' buffers far below the largest tensor."""
        nbytes = math.prod(entry.shape) * torch.empty((), dtype=entry.dtype).element_size()
        if nbytes > SCRATCH_BYTES:  # a big slice (embeddings) gets its own buffer, freed once written
            raw = torch.empty(nbytes, dtype=torch.uint8)
        else:
            if self._scratch is None or self._scratch.numel() < nbytes:
                self._scratch = torch.empty(nbytes, dtype=torch.uint8)
            raw = self._scratch[:nbytes]
        with open(self.path, "rb") as f:
            f.seek(entry.offset)
            got = f.readinto(raw.numpy().data)
        if got != nbytes:
            raise CheckpointError(f"{self.path}: unreadable (truncated: {got} of {nbytes} bytes at {entry.offset})")
        return raw.view(entry.dtype).reshape(entry.shape)

    def __getitem__(self, name: str) -> torch.Tensor:
        if self._index is not None:
            return self._read(self._index[name])
        if self._data is None:
            self._data, self._served = self._load(), 0
        value = self._data[name]
        if isinstance(value, torch.Tensor):
            self._served += value.numel() * value.element_size()
            if self._served > REMAP_BYTES:
                self._data = None  # the mapping goes once the caller drops what it was served
            return value
        if isinstance(value, TensorReference):
            tensor_path = self.path.with_name(self.path.name + ".tensors") / f"tensor_{value.tid}.pt"
            try:
                tensor = torch.load(tensor_path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as exc:
                raise CheckpointError(f"{tensor_path}: unreadable ({type(exc).__name__}: {exc})") from exc
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{tensor_path}: not a tensor")
            return tensor
        raise CheckpointError(f"{self.path}: entry {name} is a {type(value).__name__}, not a tensor")


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

"""The optimum-neuron 0.4.x sharded checkpoint layout, read without neuronx_distributed.

    checkpoint-N/done                                        written last by the trainer
    checkpoint-N/shards/model/dp_rank_00_tp_rank_XX_pp_rank_YY.pt   full model
    checkpoint-N/shards/mp_metadata_pp_rank_Y.json
    checkpoint-N/adapter_<name>/adapter_shards/model/...pt          LoRA adapter
    checkpoint-N/adapter_<name>/adapter_shards/mp_metadata_pp_rank_Y.json
    checkpoint-N/adapter_<name>/adapter_config.json

A rank file is either a plain torch.save state dict or the xser form: X.pt holds
TensorReference stubs whose tensors live in X.pt.tensors/tensor_<tid>.pt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


def checkpoint_step(path: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def resolve_checkpoint(path: Path) -> Path:
    """`path` itself if it is a checkpoint, else its latest complete checkpoint-N (one with `done`)."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory")
    if checkpoint_step(path) >= 0 or (path / "shards").is_dir() or list(path.glob("adapter_*/adapter_shards")):
        return path
    candidates = sorted((p for p in path.iterdir() if checkpoint_step(p) >= 0), key=checkpoint_step, reverse=True)
    for cand in candidates:
        if (cand / "done").is_file():
            return cand
    if candidates:
        raise CheckpointError(f"{candidates[0] / 'done'}: missing; no complete checkpoint-N in {path}")
    return path


def open_sharded(root: Path) -> ShardedCheckpoint:
    """Find the shards of `root`, checking the done marker, every rank and every metadata file."""
    adapters = sorted(root.glob("adapter_*/adapter_shards"))
    if len(adapters) > 1:
        raise CheckpointError(f"{root}: several adapters ({', '.join(a.parent.name for a in adapters)}); expected one")
    shards_dir = adapters[0] if adapters else root / "shards"
    if not shards_dir.is_dir():
        raise CheckpointError(f"{root}: neither shards/ nor adapter_<name>/adapter_shards/")
    if not (root / "done").is_file():
        raise CheckpointError(f"{root / 'done'}: missing; the checkpoint was not completely written")
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
        metadata[pp] = json.loads(meta.read_text())
        expected = metadata[pp].get("tp_size", tp_size)
        for tp in range(max(expected, tp_size)):
            if (tp, pp) not in files:
                name = f"dp_rank_00_tp_rank_{tp:02d}_pp_rank_{pp:02d}.pt"
                raise CheckpointError(f"{shards_dir / 'model' / name}: missing rank (tp {tp} of {expected})")
    return ShardedCheckpoint(root, shards_dir, shards_dir.parent if adapters else None, files, metadata)


REMAP_BYTES = 32 * 1024**2


class RankFile:
    """One rank's state dict, memory-mapped. The mapping is renewed after every REMAP_BYTES served, so pages
    of tensors already written leave memory; an xser file loads each tensor from its own file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = self._load()
        self._served = 0
        self._names = list(self._data)

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
        if self._data is None:
            self._data, self._served = self._load(), 0
        t = self[name] if isinstance(self._data[name], TensorReference) else self._data[name]
        return tuple(t.shape), t.dtype

    def names(self) -> list[str]:
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> torch.Tensor:
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


@dataclass(frozen=True)
class FusedSpec:
    """A module whose fused linear (gate_up_proj) stacks its parts per rank along dim 0."""

    module: str
    fused_name: str
    linear_names: tuple[str, ...]


def fused_specs(metadata: dict[str, Any]) -> list[FusedSpec]:
    specs = []
    for entry in metadata.get("model_weight_transformation_specs", []):
        for spec in entry.get("specs", []):
            if spec.get("type") == "FusedLinearsSpec":
                specs.append(FusedSpec(entry["module_fqn"], spec["fused_linear_name"], tuple(spec["linear_names"])))
    return specs


def partition_dim(metadata: dict[str, Any], name: str) -> int | None:
    """The dimension `name` is split on across tensor-parallel ranks, None if replicated."""
    info = metadata.get("parameters", {}).get(name)
    if info is None or not info.get("tensor_model_parallel", False):
        return None
    return int(info["partition_dim"])

"""Merge a LoRA adapter into its base model, tensor by tensor, straight on safetensors.

    python -m training.merge --base_model_path /fsx/models/llama3-8b --adapter_path /fsx/s3/runs/adapter --output_dir /fsx/s3/runs/merged

Gives what peft's merge_and_unload() gives (W += scaling * B @ A, transposed for
embeddings, computed in float32 as peft does on CPU) without loading the model:
a tensor that LoRA does not touch is copied file to file, a merged one is read,
merged and written a block of rows at a time, so memory holds a few blocks. The
next block is read and merged while the ones before are written (shards_io's
writer threads), and torch is imported in the background while the tensors
before the first merged one are copied.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.errors import ArgumentError, UserError, require_dir, require_output_dir, same_path
from training.fsio import atomic_output_dir, read_json_object
from training.weights.pipeline import BufferPool
from training.weights.shards_io import (
    FileRange,
    Part,
    Rows,
    copy_side_files,
    model_tensors,
    nbytes,
    read_tensor,
    tensor_ranges,
    torch_dtype,
    write_safetensors,
)

if TYPE_CHECKING:
    import torch

DTYPES = {"bfloat16": "BF16", "float32": "F32", "float16": "F16"}  # --dtype -> safetensors dtype
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
BLOCKS_IN_FLIGHT = 4  # being merged, waiting, being written: memory holds at most this many blocks


class MergeError(UserError):
    """Adapter and base model do not fit together."""


@dataclass
class MergeArguments:
    base_model_path: str = field(metadata={"help": "Base model directory (safetensors, config, tokenizer)."})
    adapter_path: str = field(metadata={"help": "Consolidated peft adapter directory."})
    output_dir: str = field(metadata={"help": "Where the merged model goes (must not exist or be empty)."})
    dtype: str = field(default="auto", metadata={"help": "Output dtype: auto (the base model's), bfloat16, float32."})
    max_shard_size_gb: float = field(default=5.0, metadata={"help": "Largest output safetensors file."})

    def __post_init__(self) -> None:
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ArgumentError(f"--dtype must be auto or one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.max_shard_size_gb <= 0:
            raise ArgumentError(f"--max_shard_size_gb must be positive, got {self.max_shard_size_gb}")
        require_dir("base_model_path", self.base_model_path)
        require_dir("adapter_path", self.adapter_path, "pass a consolidated peft adapter directory")
        if same_path(self.output_dir, self.base_model_path) or same_path(self.output_dir, self.adapter_path):
            raise ArgumentError("--output_dir must differ from --base_model_path and --adapter_path")
        require_output_dir("output_dir", self.output_dir)


@dataclass(frozen=True)
class LoraPair:
    module: str       # e.g. model.layers.0.self_attn.q_proj
    a_key: str
    b_key: str
    embedding: bool


def _pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """peft's rule: a pattern key applies when the module name ends with it (on a dot boundary)."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def scaling_for(config: dict[str, Any], module: str) -> float:
    r = _pattern_value(config.get("rank_pattern") or {}, module, config["r"])
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
    return float(alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r)


def replaced_weights(names: list[str]) -> dict[str, str]:
    """Base weight name -> adapter tensor that replaces it (peft saves a targeted embedding's base_layer)."""
    out = {}
    for name in names:
        match = re.fullmatch(r"base_model\.model\.(.+)\.base_layer\.weight", name)
        if match:
            out[f"{match.group(1)}.weight"] = name
    return out


def lora_pairs(names: list[str], adapter_file: Path) -> dict[str, LoraPair]:
    """Base weight name -> its LoRA pair, from the adapter's tensor names."""
    pairs: dict[str, LoraPair] = {}
    for name in names:
        if name.endswith(".base_layer.weight"):
            continue
        match = re.fullmatch(r"base_model\.model\.(.+)\.(lora_A\.weight|lora_embedding_A)", name)
        if not match:
            if not re.search(r"\.(lora_B\.weight|lora_embedding_B)$", name):
                raise MergeError(f"{adapter_file}: unsupported adapter tensor {name}")
            continue
        module, kind = match.groups()
        embedding = kind == "lora_embedding_A"
        b_key = name[: -len(kind)] + ("lora_embedding_B" if embedding else "lora_B.weight")
        if b_key not in names:
            raise MergeError(f"{adapter_file}: {name} has no matching {b_key}")
        pairs[f"{module}.weight"] = LoraPair(module, name, b_key, embedding)
    return pairs


DELTA_CHUNK_BYTES = 4 * 1024**2  # the float32 delta of one chunk stays in cache through its four passes
CHUNKS_PER_BLOCK = 4  # a block read and written whole (8 MB of a 4096-wide bf16 weight)


def block_rows(shape: tuple[int, ...]) -> int:
    """Rows per chunk of arithmetic, so its float32 delta stays within DELTA_CHUNK_BYTES (measured on 4096-wide
    weights: 25% less time than a 16 MB delta, which leaves the cache between passes); at least 64, because
    tiny chunks make BLAS pick other kernels, whose sums round differently from peft's one product."""
    return max(64, DELTA_CHUNK_BYTES // (4 * max(1, math.prod(shape[1:]))))


@dataclass(frozen=True)
class Lora:
    a: torch.Tensor  # float32, as peft keeps adapters
    b: torch.Tensor
    scaling: float
    embedding: bool

    def add_to(self, rows: torch.Tensor, start: int, scratch: torch.Tensor) -> None:
        """rows += rows [start, start + len(rows)) of scaling * B @ A (transposed for an embedding), in place,
        a linear's float32 delta built in `scratch`. That delta is added and rounded once; an embedding's is
        rounded to the weight's dtype first: both as peft does."""
        import torch

        stop = start + rows.shape[0]
        if self.embedding:
            rows += ((self.b @ self.a[:, start:stop].contiguous()).T * self.scaling).to(rows.dtype)
            return
        delta = scratch[: rows.numel()].view(rows.shape)
        torch.matmul(self.b[start:stop], self.a, out=delta)
        # the sum in float32 (each weight widened exactly, in place, no copy of the block), rounded once: what
        # peft's `weight += delta` gives, 5x faster than torch's mixed-dtype add into the narrower weight
        rows.copy_(delta.mul_(self.scaling).add_(rows))


class Blocks:
    """The memory merge reuses from tensor to tensor: row blocks lent to the writer and given back once
    written (at most BLOCKS_IN_FLIGHT), and one float32 delta, so no page is allocated (and zeroed) twice."""

    def __init__(self) -> None:
        import torch

        if "OMP_NUM_THREADS" not in os.environ:
            # the writer threads need a core: torch's workers sharing one with a writer spin-wait at each
            # kernel's barrier (measured on 2 cores: 2.5x the CPU time for the same merge)
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) - 1))
        self.pool = BufferPool(BLOCKS_IN_FLIGHT, lambda n: torch.empty(n, dtype=torch.uint8))
        self._delta = torch.empty(0, dtype=torch.float32)

    def delta(self, numel: int) -> torch.Tensor:
        import torch

        if self._delta.numel() < numel:
            self._delta = torch.empty(numel, dtype=torch.float32)
        return self._delta

    def rows(self, buffer: torch.Tensor, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
        return buffer[: nbytes(shape, dtype)].view(torch_dtype(dtype)).view(shape)


def merged_rows(source: FileRange, dtype: str, lora: Lora | None, blocks: Blocks) -> Iterator[Part]:
    """The output tensor's dim-0 pieces: the source bytes file to file when nothing changes, else blocks
    of rows, each read into a buffer of `blocks`, cast, merged in place and handed to the writer."""
    if lora is None and source.dtype == dtype:
        yield source
        return
    shape = source.shape
    count = shape[0] if shape else 1
    chunk = min(count, block_rows(shape))
    step = min(count, chunk * CHUNKS_PER_BLOCK)
    scratch = blocks.delta(chunk * math.prod(shape[1:]) if lora is not None else 0)
    for start in range(0, count, step):
        block = source.rows(start, min(start + step, count)) if shape else source
        buffer = blocks.pool.take(block.nbytes)
        block.read_into(buffer.numpy().data)
        rows = blocks.rows(buffer, block.shape, source.dtype)
        if dtype != source.dtype:
            widened = blocks.pool.take(nbytes(block.shape, dtype))
            blocks.rows(widened, block.shape, dtype).copy_(rows)
            blocks.pool.give(buffer)
            buffer, rows = widened, blocks.rows(widened, block.shape, dtype)
        if lora is not None:
            for first in range(0, rows.shape[0], chunk):
                lora.add_to(rows[first:first + chunk], start + first, scratch)
        yield Rows(block.shape, dtype, buffer[: nbytes(block.shape, dtype)].numpy().data,
                   partial(blocks.pool.give, buffer))


def main(args: MergeArguments) -> Path:
    base, adapter, output = Path(args.base_model_path), Path(args.adapter_path), Path(args.output_dir)
    config_path, adapter_file = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    for p in (config_path, adapter_file):
        if not p.is_file():
            raise MergeError(f"{p}: missing")
    config = read_json_object(config_path, MergeError)
    for key in ("r", "lora_alpha"):
        if not isinstance(config.get(key), int | float) or config[key] <= 0:
            raise MergeError(f"{config_path}: {key!r} must be a positive number, got {config.get(key)!r}")
    if config.get("fan_in_fan_out"):
        raise MergeError(f"{config_path}: fan_in_fan_out adapters are not supported")
    sources = model_tensors(base)
    adapter_tensors = tensor_ranges(adapter_file)
    pairs = lora_pairs(list(adapter_tensors), adapter_file)
    replaced = replaced_weights(list(adapter_tensors))
    missing = sorted(k for k in [*pairs, *replaced] if k not in sources)
    if missing:
        raise MergeError(f"{adapter_file}: targets {missing[0]}, which {base} lacks ({len(missing)} missing)")
    for weight, pair in pairs.items():
        a_shape, b_shape = adapter_tensors[pair.a_key].shape, adapter_tensors[pair.b_key].shape
        want = sources[weight].shape
        got = (b_shape[0], a_shape[1]) if not pair.embedding else (a_shape[1], b_shape[0])
        if a_shape[0] != b_shape[1] or got != want:
            raise MergeError(f"{adapter_file}: {pair.module} LoRA gives {got} (A {a_shape}, B {b_shape}), "
                             f"base {weight} is {want}")
    out_dtype = DTYPES.get(args.dtype)

    def output_dtype(source: FileRange) -> str:
        return out_dtype if out_dtype is not None and source.dtype in FLOAT_DTYPES else source.dtype

    specs = [(name, source.shape, output_dtype(source)) for name, source in sources.items()]
    # a targeted embedding's frozen weight comes from the adapter (peft saves it), in the base model's dtype
    sources.update({weight: adapter_tensors[name] for weight, name in replaced.items()})
    out_dtypes = {name: code for name, _, code in specs}
    if pairs or any(sources[name].dtype != code for name, code in out_dtypes.items()):
        # torch takes over a second to import: in the background, so that it overlaps the file-to-file copies
        # of the tensors before the first merged one (that one waits for it, if it is not done by then)
        threading.Thread(target=importlib.import_module, args=("torch",), name="import-torch", daemon=True).start()

    @cache
    def blocks() -> Blocks:  # made for the first merged tensor, which needs torch
        return Blocks()

    def parts(name: str) -> Iterator[Part]:
        found = pairs.get(name)
        if found is None and sources[name].dtype == out_dtypes[name]:
            return iter([sources[name]])
        lora = None if found is None else Lora(read_tensor(adapter_tensors[found.a_key]).float(),
                                               read_tensor(adapter_tensors[found.b_key]).float(),
                                               scaling_for(config, found.module), found.embedding)
        return merged_rows(sources[name], out_dtypes[name], lora, blocks())

    with atomic_output_dir(output) as tmp:
        write_safetensors(tmp, specs, parts, desc="merge", max_shard_bytes=int(args.max_shard_size_gb * 1024**3))
        copy_side_files(base, tmp)
        if out_dtype is not None and (tmp / "config.json").is_file():
            model_config = read_json_object(tmp / "config.json", MergeError)
            # transformers >= 4.56 reads `dtype` first and older ones `torch_dtype`: both say the output's
            model_config["dtype"] = model_config["torch_dtype"] = args.dtype
            (tmp / "config.json").write_text(json.dumps(model_config, indent=2))
    print(f"merged {len(pairs)} LoRA pairs into {len(specs)} tensors at {output}")
    return output


def cli(argv: list[str] | None = None) -> int:
    from training.cli import run_entry_point

    return run_entry_point((MergeArguments,), main, argv=argv, prog="python -m training.merge",
                           description=__doc__)


if __name__ == "__main__":
    sys.exit(cli())

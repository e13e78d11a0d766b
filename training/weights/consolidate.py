"""Turn a tensor-parallel optimum-neuron checkpoint into one peft adapter (or one full model).

    python -m training.consolidate --checkpoint_dir /fsx/s3/runs/llama3-lora --output_dir /fsx/s3/runs/llama3-lora/adapter

--checkpoint_dir may be a checkpoint-N or a training output dir (the latest
checkpoint-N whose shards carry neuronx_distributed's `done` marker and
whose trainer_state.json was written is used). A plain peft adapter directory is
validated and copied. Rank files are indexed, never loaded: column-parallel and
replicated tensors are copied file to file, row-parallel ones a block of rows at
a time, so memory stays far below the largest tensor. torch is never imported
(it would take longer than copying a 2 GB model). The output appears only when
complete.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from training.errors import ArgumentError, require_dir, require_output_dir, same_path
from training.fsio import atomic_output_dir, read_json_object
from training.weights.pipeline import BufferPool
from training.weights.shards_io import (
    Part,
    Rows,
    copy_side_files,
    row_bytes,
    tensor_ranges,
    write_safetensors,
)
from training.weights.shards_layout import (
    CheckpointError,
    RankFile,
    ShardedCheckpoint,
    fused_specs,
    open_sharded,
    parameter_dims,
    resolve_checkpoint,
)

MAX_SHARD_BYTES = 5 * 1024**3


@dataclass
class ConsolidateArguments:
    checkpoint_dir: str = field(metadata={"help": "checkpoint-N, a training output dir, or a plain peft adapter dir."})
    output_dir: str = field(metadata={"help": "Where to write the consolidated adapter or model (must not exist or be empty)."})
    max_shard_size_gb: float = field(default=5.0, metadata={"help": "Largest safetensors file for a full model."})

    def __post_init__(self) -> None:
        if self.max_shard_size_gb <= 0:
            raise ArgumentError(f"--max_shard_size_gb must be positive, got {self.max_shard_size_gb}")
        require_dir("checkpoint_dir", self.checkpoint_dir)
        if same_path(self.output_dir, self.checkpoint_dir):
            raise ArgumentError("--output_dir must differ from --checkpoint_dir")
        require_output_dir("output_dir", self.output_dir)


Producer = Callable[[], Iterator[Part]]
BLOCK_BYTES = 32 * 1024**2
BLOCKS_IN_FLIGHT = 4  # being laid out, waiting, being written: memory holds at most this many blocks


def _rows_of(rank: RankFile, name: str, start: int, stop: int) -> Part:
    """Rows [start, stop) of `name` in `rank`: file to file where the tensor is contiguous, else through memory."""
    whole = rank.range(name)
    if whole is not None:
        return whole.rows(start, stop) if whole.shape else whole
    shape, dtype = rank.shape(name)
    return Rows((stop - start, *shape[1:]) if shape else (), dtype, rank.rows(name, start, stop).data)


def _gather(ranks: list[RankFile], name: str, dim: int | None, pool: BufferPool) -> Iterator[Part]:
    """Dim-0 pieces of the whole tensor. Replicated or split on dim 0: each rank's slice, file to file.
    Split on a later dim: blocks of rows, each rank's part of the rows read and laid side by side in a
    buffer of `pool`, which goes back to the pool once written.

    Each rank's rows are read whole and copied into their columns by numpy. Reading them straight into
    their columns (os.preadv with an iovec per row) was measured slower here: 1-3.5 KB per iovec, as
    o_proj and down_proj give at Llama-3-8B's size over 8 ranks, costs the kernel more than one
    contiguous read and a strided copy (bench/results/scatter_read.md)."""
    shape, dtype = ranks[0].shape(name)
    count = shape[0] if shape else 1
    if dim is None:
        yield _rows_of(ranks[0], name, 0, count)
        return
    if dim == 0:
        for r in ranks:
            yield _rows_of(r, name, 0, r.shape(name)[0][0])
        return
    # per dim-0 row, each rank holds prod(shape[1:dim]) runs of its columns, which sit side by side
    runs = math.prod(shape[1:dim])
    widths = [row_bytes(r.shape(name)[0], dtype) // runs for r in ranks]
    out_shape = (*shape[:dim], sum(r.shape(name)[0][dim] for r in ranks), *shape[dim + 1:])
    width = sum(widths) * runs
    block = max(1, min(count, BLOCK_BYTES // width))
    for start in range(0, count, block):
        stop = min(start + block, count)
        buffer = pool.take(block * width)
        out = buffer[: (stop - start) * width].reshape((stop - start) * runs, sum(widths))
        column = 0
        for r, w in zip(ranks, widths, strict=True):
            out[:, column:column + w] = r.rows(name, start, stop).reshape(-1, w)
            column += w
        yield Rows((stop - start, *out_shape[1:]), dtype, out.data, partial(pool.give, buffer))


def _unfuse(ranks: list[RankFile], name: str, sizes: list[int], index: int) -> Iterator[Part]:
    """Part `index` of a column-fused tensor: each rank holds its slice of every part, stacked along dim 0."""
    start = sum(sizes[:index])
    for r in ranks:
        yield _rows_of(r, name, start, start + sizes[index])


def _plan(ckpt: ShardedCheckpoint, adapter_name: str | None,
          pool: BufferPool) -> list[tuple[str, tuple[int, ...], str, Producer]]:
    """(output name, shape, dtype, how to build it) for every tensor, in rank-0 order; row-parallel ones
    are laid out in buffers of `pool`.

    Like optimum-neuron, only tensors named in mp_metadata's `parameters` are consolidated (buffers are not)."""
    plan: list[tuple[str, tuple[int, ...], str, Producer]] = []
    for pp in range(ckpt.pp_size):
        meta = ckpt.metadata[pp]
        dims = parameter_dims(meta, adapter_name)
        ranks = [RankFile(ckpt.rank_files[(tp, pp)]) for tp in range(ckpt.tp_size)]
        fused = fused_specs(meta)
        for name in ranks[0].names():
            if name not in dims:
                if ".lora_" in name:
                    raise CheckpointError(f"{meta['__file__']}: no parameter entry for {name} (adapter "
                                          f"{adapter_name!r}) of {ranks[0].path}")
                continue
            dim = dims[name]
            shapes = []
            for r in ranks:
                if name not in r:
                    raise CheckpointError(f"{r.path}: lacks {name}, which rank 0 has")
                shapes.append(r.shape(name)[0])
                if r.shape(name)[1] != ranks[0].shape(name)[1]:
                    raise CheckpointError(f"{r.path}: {name} is {r.shape(name)[1]}, rank 0's is {ranks[0].shape(name)[1]}")
            if dim is None and len(set(shapes)) != 1:
                raise CheckpointError(f"{ranks[0].path}: replicated {name} differs in shape across ranks {shapes}")
            if dim is not None and any(s[:dim] + s[dim + 1:] != shapes[0][:dim] + shapes[0][dim + 1:] for s in shapes):
                raise CheckpointError(f"{ranks[-1].path}: {name} shapes {shapes} do not add up on dim {dim}")
            if dim is not None:  # neuronx_distributed splits a parallel dim into equal parts, one per rank
                for r, s in zip(ranks, shapes, strict=True):
                    if s[dim] != shapes[0][dim]:
                        raise CheckpointError(f"{r.path}: {name} holds {s[dim]} on its split dim {dim}, rank 0 "
                                              f"holds {shapes[0][dim]}; tensor-parallel ranks split evenly, so "
                                              "this rank file does not belong to the checkpoint")
            dtype = ranks[0].shape(name)[1]
            spec = next((f for f in fused if name.startswith(f"{f.module}.{f.fused_name}.")), None)
            if spec is None:
                shape = list(shapes[0])
                if dim is not None:
                    shape[dim] = sum(s[dim] for s in shapes)
                plan.append((name, tuple(shape), dtype, partial(_gather, ranks, name, dim, pool)))
                continue
            rest = name[len(f"{spec.module}.{spec.fused_name}."):]
            outs = [f"{spec.module}.{linear}.{rest}" for linear in spec.linear_names]
            if dim is None:  # LoRA A of a column-fused linear: one A shared by every part, so each gets a copy
                for out in outs:
                    plan.append((out, shapes[0], dtype, partial(_gather, ranks, name, None, pool)))
                continue
            sizes = [d // spec.tp_size for d in spec.original_dims]
            if dim != 0 or spec.tp_size != len(ranks) or any(s[0] != sum(sizes) for s in shapes):
                raise CheckpointError(f"{ranks[0].path}: fused {name} of shape {shapes[0]} (split on dim {dim}) "
                                      f"does not hold {list(spec.original_dims)} / TP {spec.tp_size} rows per rank")
            for i, out in enumerate(outs):
                rows = spec.original_dims[i] // spec.tp_size * len(ranks)
                plan.append((out, (rows, *shapes[0][1:]), dtype, partial(_unfuse, ranks, name, sizes, i)))
    return plan


def _adapter_config(adapter_dir: Path, linears: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """optimum-neuron saves it with the original module names already; a fused name still present is
    expanded anyway, since peft would otherwise find no gate_up_proj module to load into."""
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    config: dict[str, Any] = read_json_object(path, CheckpointError)
    targets = config.get("target_modules")
    if isinstance(targets, list):
        expanded: list[str] = []
        for t in targets:
            expanded.extend(linears.get(t, (t,)))
        config["target_modules"] = sorted(set(expanded))
    return config


def consolidate_sharded(ckpt: ShardedCheckpoint, out: Path, max_shard_bytes: int) -> list[str]:
    adapter_name = ckpt.adapter_dir.name.removeprefix("adapter_") if ckpt.adapter_dir else None
    plan = _plan(ckpt, adapter_name, BufferPool(BLOCKS_IN_FLIGHT))
    if not plan:
        raise CheckpointError(f"{ckpt.shards_dir}: no tensor of the rank files is a parameter in mp_metadata")
    producers = {name: make for name, _, _, make in plan}
    specs = [(n, s, d) for n, s, d, _ in plan]
    config = None
    if ckpt.adapter_dir is not None:
        fused = [s for pp in ckpt.metadata.values() for s in fused_specs(pp)]
        config = _adapter_config(ckpt.adapter_dir, {s.fused_name: s.linear_names for s in fused})
    # an adapter is one file, as peft writes it; a full model is sharded like save_pretrained
    weight_map = write_safetensors(out, specs, lambda name: producers[name](), desc="consolidate",
                                   max_shard_bytes=None if config is not None else max_shard_bytes,
                                   filename="adapter_model.safetensors")
    if config is not None:
        (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    copy_side_files(ckpt.root, out)
    return list(weight_map)


def validate_peft_dir(path: Path) -> None:
    """A plain peft adapter: a parseable config with a LoRA rank, and a readable weights file."""
    config_path, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    for p in (config_path, weights):
        if not p.is_file():
            raise CheckpointError(f"{p}: missing")
    config = read_json_object(config_path, CheckpointError)
    if "r" not in config:
        raise CheckpointError(f"{config_path}: no LoRA rank 'r'")
    tensor_ranges(weights)


def main(args: ConsolidateArguments) -> Path:
    source = Path(args.checkpoint_dir)
    output = Path(args.output_dir)
    if (source / "adapter_model.safetensors").is_file() and not list(source.glob("adapter_*/adapter_shards")):
        validate_peft_dir(source)
        with atomic_output_dir(output) as tmp:
            for path in sorted(source.iterdir()):
                if path.is_file():
                    shutil.copy2(path, tmp / path.name)
        print(f"{source} is already a plain peft adapter: validated and copied to {output}")
        return output
    ckpt = open_sharded(resolve_checkpoint(source))
    with atomic_output_dir(output) as tmp:
        names = consolidate_sharded(ckpt, tmp, int(args.max_shard_size_gb * 1024**3))
    kind = "adapter" if ckpt.adapter_dir else "model"
    print(f"consolidated {len(names)} tensors from {ckpt.tp_size} TP x {ckpt.pp_size} PP ranks of {ckpt.root} "
          f"into a {kind} at {output}")
    return output


def cli(argv: list[str] | None = None) -> int:
    from training.cli import run_entry_point

    return run_entry_point((ConsolidateArguments,), main, argv=argv, prog="python -m training.consolidate",
                           description=__doc__)


if __name__ == "__main__":
    sys.exit(cli())

"""Merge a LoRA adapter into its base model, tensor by tensor, straight on safetensors.

    python -m training.merge --base_model_path /fsx/models/llama3-8b --adapter_path /fsx/runs/adapter --output_dir /fsx/runs/merged

Gives what peft's merge_and_unload() gives (W += scaling * B @ A, transposed for
embeddings, computed in float32 as peft does on CPU) without loading the model:
peak memory stays near the largest tensor.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tqdm import tqdm

from training.fsio import atomic_output_dir
from training.shards_io import (
    SafetensorsStream,
    copy_side_files,
    plan_shards,
    read_header,
    safetensors_files,
    shard_names,
    write_index,
)

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}


class MergeError(ValueError):
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
            raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.max_shard_size_gb <= 0:
            raise ValueError("max_shard_size_gb must be positive")


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


DELTA_CHUNK_BYTES = 64 * 1024**2


def add_delta(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float, embedding: bool) -> None:
    """weight += scaling * B @ A (transposed for embeddings) in place, a block of rows at a time so the
    float32 delta never exceeds DELTA_CHUNK_BYTES. peft keeps adapters in float32: a linear's float32
    delta is added and rounded once, an embedding's is rounded to the weight's dtype first, as peft does."""
    a, b = a.float(), b.float()
    # blocks of at least 64 rows: tiny blocks make BLAS pick other kernels, whose sums round differently
    rows = max(64, DELTA_CHUNK_BYTES // (4 * weight.shape[1]))
    for start in range(0, weight.shape[0], rows):
        stop = min(start + rows, weight.shape[0])
        if embedding:
            weight[start:stop] += ((b @ a[:, start:stop].contiguous()).T * scaling).to(weight.dtype)
        else:
            weight[start:stop] += (b[start:stop] @ a) * scaling


def main(args: MergeArguments) -> Path:
    base, adapter, output = Path(args.base_model_path), Path(args.adapter_path), Path(args.output_dir)
    config_path, adapter_file = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    for p in (config_path, adapter_file):
        if not p.is_file():
            raise MergeError(f"{p}: missing")
    config = json.loads(config_path.read_text())
    if config.get("fan_in_fan_out"):
        raise MergeError(f"{config_path}: fan_in_fan_out adapters are not supported")
    files = safetensors_files(base)
    headers = {f: read_header(f) for f in sorted(set(files.values()))}
    adapter_names = list(read_header(adapter_file))
    pairs = lora_pairs(adapter_names, adapter_file)
    replaced = replaced_weights(adapter_names)
    missing = sorted(k for k in [*pairs, *replaced] if k not in files)
    if missing:
        raise MergeError(f"{adapter_file}: targets {missing[0]}, which {base} lacks ({len(missing)} missing)")
    out_dtype = DTYPES.get(args.dtype)

    specs = []
    for name, file in files.items():
        info = headers[file][name]
        dtype = ST_DTYPES[info["dtype"]]
        if out_dtype is not None and dtype.is_floating_point:
            dtype = out_dtype
        specs.append((name, tuple(info["shape"]), dtype))

    with safe_open(str(adapter_file), framework="pt") as ad:
        for weight, pair in pairs.items():
            a_shape, b_shape = tuple(ad.get_slice(pair.a_key).get_shape()), tuple(ad.get_slice(pair.b_key).get_shape())
            want = tuple(headers[files[weight]][weight]["shape"])
            got = (b_shape[0], a_shape[1]) if not pair.embedding else (a_shape[1], b_shape[0])
            if a_shape[0] != b_shape[1] or got != want:
                raise MergeError(f"{adapter_file}: {pair.module} LoRA gives {got} (A {a_shape}, B {b_shape}), "
                                 f"base {weight} is {want}")

        shards = plan_shards(specs, int(args.max_shard_size_gb * 1024**3))
        filenames = shard_names(len(shards))
        weight_map: dict[str, str] = {}
        total = 0
        bar = tqdm(total=len(specs), desc="merge", unit="tensor")
        with atomic_output_dir(output) as tmp:
            for group, filename in zip(shards, filenames, strict=True):
                stream = SafetensorsStream(tmp / filename, group)
                for name, _, dtype in group:
                    if name in replaced:
                        tensor = ad.get_tensor(replaced[name]).to(dtype)
                    else:
                        with safe_open(str(files[name]), framework="pt") as src:
                            tensor = src.get_tensor(name).to(dtype)
                    lora = pairs.get(name)
                    if lora is not None:
                        add_delta(tensor, ad.get_tensor(lora.a_key), ad.get_tensor(lora.b_key),
                                  scaling_for(config, lora.module), lora.embedding)
                    stream.append(name, tensor)
                    total += tensor.numel() * tensor.element_size()
                    weight_map[name] = filename
                    del tensor
                    bar.update(1)
                stream.close()
            bar.close()
            if len(filenames) > 1:
                write_index(tmp / "model.safetensors.index.json", weight_map, total)
            copy_side_files(base, tmp)
            if out_dtype is not None and (tmp / "config.json").is_file():
                model_config = json.loads((tmp / "config.json").read_text())
                model_config["torch_dtype"] = args.dtype
                (tmp / "config.json").write_text(json.dumps(model_config, indent=2))
    print(f"merged {len(pairs)} LoRA pairs into {len(specs)} tensors at {output}")
    return output


def cli(argv: list[str] | None = None) -> int:
    from training.cli import run_entry_point

    return run_entry_point((MergeArguments,), main, argv=argv,
                           user_errors=(MergeError, FileExistsError, FileNotFoundError, ValueError),
                           prog="python -m training.merge", description=__doc__)


if __name__ == "__main__":
    sys.exit(cli())

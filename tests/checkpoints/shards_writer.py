"""Test support: split a state dict into tensor-parallel ranks the way optimum-neuron 0.4.5 saves them.

Mirrors optimum-neuron v0.4.5 (Llama, TP with num_key_value_heads divisible by TP, so q/k/v stay separate):
- LlamaMLP fuses gate_proj + up_proj into a ColumnParallelLinear gate_up_proj; each rank holds
  [its gate slice; its up slice] (FusedLinearsSpec, fuse_axis 0, original_dims [I, I]).
- LoRA on a column-parallel linear: lora_A replicated, lora_B split on dim 0; on a row-parallel one:
  lora_A split on dim 1, lora_B replicated. gate_up_proj gets one lora_A, the mean of gate's and up's.
- LoRA on the embedding: lora_embedding_A/B are plain parameters, replicated.
- Rank files key tensors like peft's get_peft_model_state_dict (no adapter name); mp_metadata's
  `parameters` key them like named_parameters (`lora_A.<adapter>.weight`, plus the frozen base_layer).
- neuronx_distributed writes `done` in the shard directory; the trainer then writes trainer_state.json.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import torch

COLUMN = ("q_proj", "k_proj", "v_proj", "gate_up_proj", "lm_head")
ROW = ("o_proj", "down_proj")
LORA = re.compile(r"\.(lora_(?:embedding_)?[AB])(?=\.|$)")


def fuse_gate_up(state: dict[str, torch.Tensor], tp: int) -> dict[str, torch.Tensor]:
    """gate_proj + up_proj -> gate_up_proj: each rank's slice is [gate part; up part]; one lora_A (the mean)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if ".up_proj." in name:
            continue
        if ".gate_proj." not in name:
            out[name] = tensor
            continue
        up = state[name.replace(".gate_proj.", ".up_proj.")]
        fused = name.replace(".gate_proj.", ".gate_up_proj.")
        if ".lora_A." in name:
            out[fused] = torch.stack([tensor, up]).mean(dim=0)
        else:
            out[fused] = torch.cat([t for pair in zip(tensor.chunk(tp), up.chunk(tp), strict=True) for t in pair])
    return out


def neuron_equivalent(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What consolidating a Neuron-trained adapter gives back: gate's and up's lora_A are the same tensor."""
    out = dict(state)
    for name, tensor in state.items():
        if ".gate_proj.lora_A." in name:
            up_name = name.replace(".gate_proj.", ".up_proj.")
            out[name] = out[up_name] = torch.stack([tensor, state[up_name]]).mean(dim=0)
    return out


def partition_dim(name: str) -> int | None:
    module = name.split(".lora_")[0] if ".lora_" in name else name.rsplit(".", 1)[0]
    module = module.removesuffix(".base_layer")
    leaf = module.rsplit(".", 1)[-1]
    if ".lora_embedding_" in name:
        return None
    if leaf == "embed_tokens":
        return 0
    if leaf in COLUMN:
        return None if ".lora_A." in name else 0
    if leaf in ROW:
        return None if ".lora_B." in name else 1
    return None


def metadata(names: list[str], tp: int, adapter: str | None, mlp_hidden: int | None) -> dict:
    """mp_metadata_pp_rank_0.json as create_parameter_metadata writes it."""
    params: dict[str, dict] = {}
    for n in names:
        dim = partition_dim(n)
        if adapter is not None:
            lora = LORA.search(n)
            if lora:  # the frozen base layer is a parameter too, never saved in the adapter
                base = n[:lora.start()] + ".base_layer.weight"
                bdim = partition_dim(base)
                params[base] = {"tensor_model_parallel": bdim is not None, "partition_dim": bdim or 0,
                                "partition_stride": 1, "num_partitions": tp} if bdim is not None \
                    else {"tensor_model_parallel": False}
                n = n[:lora.end()] + f".{adapter}" + n[lora.end():]
        params[n] = ({"tensor_model_parallel": True, "partition_dim": dim, "partition_stride": 1, "num_partitions": tp}
                     if dim is not None else {"tensor_model_parallel": False})
    mlps = sorted({n.split(".mlp.")[0] + ".mlp" for n in names if ".mlp.gate_up_proj." in n})
    attns = sorted({n.split(".self_attn.")[0] + ".self_attn" for n in names if ".self_attn." in n})
    specs = [{"module_fully_qualified_name": m, "specs": [["FusedLinearsSpec", {
        "fused_linear_name": "gate_up_proj", "linear_names": ["gate_proj", "up_proj"], "bias": False,
        "fuse_axis": 0, "original_dims": [mlp_hidden, mlp_hidden], "tp_size": tp,
        "peft_type": "lora" if adapter else None}]]} for m in mlps]
    specs += [{"module_fully_qualified_name": m, "specs": []} for m in attns]  # LlamaAttention: no spec at TP <= kv heads
    return {"parameters": params, "model_weight_transformation_specs": specs}


def write_sharded(root: Path, state: dict[str, torch.Tensor], tp: int = 8, xser: bool = False,
                  adapter_config: dict | None = None, adapter: str = "default") -> Path:
    """checkpoint-N/{shards|adapter_<name>/adapter_shards}/{model/dp_rank_00_tp_rank_XX_pp_rank_00.pt, metadata, done}.

    `state` is named as the rank files name it: a peft adapter_model.safetensors state, or a model state dict."""
    fused = fuse_gate_up(state, tp)
    mlp_hidden = next((t.shape[0] for n, t in state.items() if ".gate_proj." in n and ".lora_A." not in n), None)
    if adapter_config is not None:
        adapter_dir = root / f"adapter_{adapter}"
        shards = adapter_dir / "adapter_shards"
        shards.mkdir(parents=True)
        # to_original_peft_config_for_model: the saved config names gate_proj/up_proj, not gate_up_proj
        (adapter_dir / "adapter_config.json").write_text(json.dumps(adapter_config))
    else:
        shards = root / "shards"
    (shards / "model").mkdir(parents=True)
    meta = metadata(list(fused), tp, adapter if adapter_config is not None else None, mlp_hidden)
    (shards / "mp_metadata_pp_rank_0.json").write_text(json.dumps(meta, indent=4))
    for rank in range(tp):
        rank_state = {}
        for n, t in fused.items():
            dim = partition_dim(n)
            rank_state[n] = (t if dim is None else t.chunk(tp, dim=dim)[rank]).clone()
        path = shards / "model" / f"dp_rank_00_tp_rank_{rank:02d}_pp_rank_00.pt"
        if xser:
            _save_xser(path, rank_state)
        else:
            torch.save(rank_state, path)
    (shards / "done").write_text("")
    (root / "trainer_state.json").write_text(json.dumps({"global_step": int(root.name.rsplit("-", 1)[-1])
                                                         if root.name.startswith("checkpoint-") else 0}))
    return root


class TensorReference:
    def __init__(self, tid: int) -> None:
        self.tid = tid


def _save_xser(path: Path, state: dict[str, torch.Tensor]) -> None:
    """X.pt of TensorReference stubs, tensors in X.pt.tensors/tensor_<tid>.pt (neuronx_distributed's xser)."""
    tensors = path.with_name(path.name + ".tensors")
    tensors.mkdir()
    refs = {}
    for tid, (name, tensor) in enumerate(state.items()):
        torch.save(tensor, tensors / f"tensor_{tid}.pt")
        refs[name] = TensorReference(tid)
    # pickle names the class by its import path, so torch_xla's path must import while saving (only then).
    names = ("torch_xla", "torch_xla.utils", "torch_xla.utils.serialization")
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]].TensorReference = TensorReference  # type: ignore[attr-defined]
    TensorReference.__module__ = names[-1]
    try:
        torch.save(refs, path)
    finally:
        TensorReference.__module__ = __name__
        for n, mod in saved.items():
            if mod is None:
                del sys.modules[n]
            else:
                sys.modules[n] = mod

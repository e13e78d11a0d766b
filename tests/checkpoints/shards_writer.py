"""Test support: split a state dict into 8 tensor-parallel ranks the way optimum-neuron 0.4.x saves them."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch

COLUMN = ("q_proj", "k_proj", "v_proj", "gate_up_proj", "lm_head")
ROW = ("o_proj", "down_proj")


def fuse_gate_up(state: dict[str, torch.Tensor], tp: int) -> dict[str, torch.Tensor]:
    """gate_proj + up_proj -> gate_up_proj, each rank's slice holding [gate part; up part] (lora_A stacked)."""
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
            out[fused] = torch.cat([tensor, up], dim=0)
        else:
            out[fused] = torch.cat([t for pair in zip(tensor.chunk(tp), up.chunk(tp), strict=True) for t in pair])
    return out


def partition_dim(name: str) -> int | None:
    module = name.split(".lora_")[0] if ".lora_" in name else name.rsplit(".", 1)[0]
    module = module.removesuffix(".base_layer")
    leaf = module.rsplit(".", 1)[-1]
    if leaf == "embed_tokens":
        return 1 if "lora_embedding_A" in name else (None if "lora_embedding_B" in name else 0)
    if leaf in COLUMN:
        return None if ".lora_A." in name else 0
    if leaf in ROW:
        return None if ".lora_B." in name else 1
    return None


def write_sharded(root: Path, state: dict[str, torch.Tensor], tp: int = 8, xser: bool = False,
                  adapter_config: dict | None = None) -> Path:
    """checkpoint-N/{shards|adapter_default/adapter_shards}/model/dp_rank_00_tp_rank_XX_pp_rank_00.pt + metadata + done."""
    fused = fuse_gate_up(state, tp)
    if adapter_config is not None:
        adapter_dir = root / "adapter_default"
        shards = adapter_dir / "adapter_shards"
        shards.mkdir(parents=True)
        config = dict(adapter_config)
        config["target_modules"] = sorted({"gate_up_proj" if t in ("gate_proj", "up_proj") else t
                                           for t in config["target_modules"]})
        (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    else:
        shards = root / "shards"
    (shards / "model").mkdir(parents=True)
    params = {n: {"tensor_model_parallel": partition_dim(n) is not None, "partition_dim": partition_dim(n) or 0}
              for n in fused}
    layers = sorted({n.split(".mlp.")[0] + ".mlp" for n in fused if ".mlp.gate_up_proj." in n})
    specs = [{"module_fqn": m, "specs": [{"type": "FusedLinearsSpec", "fused_linear_name": "gate_up_proj",
                                          "linear_names": ["gate_proj", "up_proj"], "fuse_axis": "column"}]}
             for m in layers]
    (shards / "mp_metadata_pp_rank_0.json").write_text(json.dumps(
        {"tp_size": tp, "pp_size": 1, "parameters": params, "model_weight_transformation_specs": specs}))
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
    (root / "done").write_text("")
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

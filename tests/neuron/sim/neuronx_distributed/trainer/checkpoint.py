"""neuronx_distributed's checkpoint writer, as far as its file layout goes:

    <path>/<tag>/model/dp_rank_00_tp_rank_XX_pp_rank_YY.pt   each model-parallel shard, written by DP rank 0
    <path>/<tag>/optim/dp_rank_DD_tp_rank_XX_pp_rank_YY.pt   each rank's optimizer state, when given
    <path>/<tag>/done                                        written by global rank 0 once all have saved

It writes plain torch.save files (use_xser=False's form; training.weights.shards_layout reads both forms). Every
file goes through a temporary name and a rename, so a killed save leaves no file that looks complete.
The done marker of an earlier save into the same directory is not removed, as in neuronx_distributed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch_xla import runtime as xr
from torch_xla.core import xla_model as xm

from neuronx_distributed.parallel_layers import parallel_state

g_iostate = None  # no asynchronous save in flight, ever
SAVED: list[Path] = []  # every file this process wrote, in order (tests read it)


def _rank_file(directory: Path, dp: int) -> Path:
    tp, pp = parallel_state.get_tensor_model_parallel_rank(), parallel_state.get_pipeline_model_parallel_rank()
    return directory / f"dp_rank_{dp:02d}_tp_rank_{tp:02d}_pp_rank_{pp:02d}.pt"


def _write(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    SAVED.append(path)


def save_checkpoint(path: str, tag: str, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                    user_content: Any = None, num_workers: int = 8, use_xser: bool = False,
                    num_kept_ckpts: int | None = None, async_save: bool = False, zero1_optimizer: bool = False,
                    **kwargs: Any) -> None:
    root = Path(path) / tag
    dp = parallel_state.get_data_parallel_rank()
    if model is not None and dp == 0:
        state = model if isinstance(model, dict) else model.state_dict()
        _write({k: v.detach().cpu() for k, v in state.items()}, _rank_file(root / "model", 0))
    if optimizer is not None:
        _write(optimizer.state_dict(), _rank_file(root / "optim", dp))
    if user_content is not None and xr.global_ordinal() == 0:
        _write(user_content, root / "user_content.pt")
    xm.rendezvous("save_checkpoint")
    if xr.global_ordinal() == 0:
        (root / "done").touch()
        SAVED.append(root / "done")

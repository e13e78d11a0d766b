"""The "xla" process-group backend. torch_xla registers it with torch.distributed; here a group of this
one process stands in for the job's (gloo over an in-memory store), since each simulated rank runs alone.
torch.distributed.get_rank() is then 0 on every simulated rank: the rank is RANK, as torch_xla.runtime
reports it."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

ProcessGroupXla = dist.ProcessGroup
_init_process_group = dist.init_process_group


def _init(backend: Any = None, *args: Any, **kwargs: Any) -> None:
    if backend == "xla":
        _init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    else:
        _init_process_group(backend, *args, **kwargs)


dist.init_process_group = _init

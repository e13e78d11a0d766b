"""ZeRO-1 without sharding: with identical replicas every rank holds the full optimizer state, which is what
each would hold after gathering its shards."""

from __future__ import annotations

from typing import Any

import torch


class NeuronZero1Optimizer(torch.optim.Optimizer):
    def __init__(self, params: Any, optimizer_class: type[torch.optim.Optimizer], max_norm: float | None = None,
                 grad_clipping: bool = True, pin_layout: bool = False, sharding_groups: Any = None,
                 grad_norm_groups: Any = None, lazy_init: bool = False, **defaults: Any) -> None:
        keep = {k: v for k, v in defaults.items() if k in optimizer_class.__init__.__code__.co_varnames}
        self.base = optimizer_class(params, **keep)
        self.max_norm, self.grad_clipping = max_norm, grad_clipping
        self._grad_norm: torch.Tensor | None = None

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base.param_groups

    @param_groups.setter
    def param_groups(self, value: Any) -> None:
        pass

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base.state

    @state.setter
    def state(self, value: Any) -> None:
        pass

    @property
    def defaults(self) -> Any:  # type: ignore[override]
        return self.base.defaults

    @defaults.setter
    def defaults(self, value: Any) -> None:
        pass

    def step(self, closure: Any = None) -> Any:
        params = [p for g in self.base.param_groups for p in g["params"] if p.grad is not None]
        if self.grad_clipping and self.max_norm is not None:
            self._grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        else:  # NxD reports the norm either way
            self._grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        return self.base.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict)

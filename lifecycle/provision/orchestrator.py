"""Which steps run on which role, in order; a failed step stops the run and is named."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from provision.accounting import slurm_accounting
from provision.bundle import install_bundle
from provision.context import Context
from provision.fsx import mount_fsx
from provision.home import shared_home
from provision.neuron import neuron_compile_cache, neuron_env, neuron_venv
from provision.node import Role
from provision.shared_tree import prepare_shared_tree
from provision.slurm import start_slurmctld, start_slurmd, wait_slurm_conf

ALL = frozenset(Role)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Context], None]
    roles: frozenset[Role]
    when: Callable[[Context], bool] = lambda ctx: True


def _accounting_on(ctx: Context) -> bool:
    return ctx.params.slurm_accounting


def _trainium(ctx: Context) -> bool:
    return ctx.node.is_trainium


def shared_tree(ctx: Context) -> None:
    prepare_shared_tree(ctx.host, ctx.params.fsx_mount_point, ctx.params.default_user)


STEPS = (
    Step("install_bundle", install_bundle, ALL),
    Step("mount_fsx", mount_fsx, ALL),
    Step("shared_home", shared_home, ALL),
    # FSx is shared: the controller prepares the jobs' tree once for the whole cluster.
    Step("shared_tree", shared_tree, frozenset({Role.CONTROLLER})),
    Step("wait_slurm_conf", wait_slurm_conf, frozenset({Role.CONTROLLER})),
    Step("slurm_accounting", slurm_accounting, frozenset({Role.CONTROLLER}), _accounting_on),
    Step("start_slurmctld", start_slurmctld, frozenset({Role.CONTROLLER})),
    Step("neuron_compile_cache", neuron_compile_cache, frozenset({Role.WORKER}), _trainium),
    Step("neuron_env", neuron_env, frozenset({Role.WORKER}), _trainium),
    Step("neuron_venv", neuron_venv, frozenset({Role.WORKER}), _trainium),
    # Last, so Slurm only schedules onto a worker once everything above is in place.
    Step("start_slurmd", start_slurmd, frozenset({Role.WORKER, Role.LOGIN})),
)


class StepFailed(RuntimeError):
    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {cause}")
        self.step = step


def plan(ctx: Context) -> list[Step]:
    return [s for s in STEPS if ctx.node.role in s.roles and s.when(ctx)]


def provision(ctx: Context) -> None:
    steps = plan(ctx)
    print(
        f"node {ctx.node.name} ({ctx.node.ip}) in group {ctx.node.group}: role {ctx.node.role.value}; "
        f"steps: {', '.join(s.name for s in steps)}",
        flush=True,
    )
    for step in steps:
        began = time.monotonic()
        print(f"==> {step.name}", flush=True)
        try:
            step.run(ctx)
        except Exception as exc:
            raise StepFailed(step.name, exc) from exc
        print(f"<== {step.name} ok ({time.monotonic() - began:.1f}s)", flush=True)

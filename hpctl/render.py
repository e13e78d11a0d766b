"""Rich tables for the commands' results; no AWS calls here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hpctl.cluster import Cluster, Node
from hpctl.cost import Rate, SlurmJob, jobs_cost
from hpctl.validate import Finding, Status

_MARK = {Status.OK: "[green]✓[/]", Status.WARN: "[yellow]![/]", Status.FAIL: "[red]✗[/]", Status.NOT_RUN: "[dim]?[/]"}


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def cluster_status(out: Console, cluster: Cluster, nodes: list[Node]) -> None:
    colour = {"InService": "green", "Failed": "red"}.get(cluster.status, "yellow")
    out.print(f"Cluster {cluster.name} ({cluster.cluster_id}): [{colour}]{cluster.status}[/]")
    if cluster.failure_message:
        out.print(f"  {cluster.failure_message}")
    table = Table("group", "instance", "type", "status", "launched")
    for node in sorted(nodes, key=lambda n: (n.group, n.instance_id)):
        launched = node.launch_time.strftime("%Y-%m-%d %H:%M") if node.launch_time else ""
        table.add_row(node.group, node.instance_id, node.instance_type, node.status, launched)
    for group in cluster.groups:
        if group.current_count < group.target_count:
            out.print(f"  {group.name}: {group.current_count}/{group.target_count} {group.instance_type} up")
    out.print(table)


def findings(out: Console, results: list[Finding]) -> None:
    table = Table("", "check", "finding")
    for item in results:
        table.add_row(_MARK[item.status], item.check, item.detail)
    out.print(table)


def estimate(out: Console, rate: Rate, count: int, hours: float) -> None:
    usd = hours * count * rate.usd_per_hour
    out.print(f"estimated ${usd:,.2f} for {count} x {rate.instance_type} for {hours:.2f} h", markup=False)
    out.print(f"price: {rate.basis}", markup=False, style="dim")


def sacct_cost(out: Console, jobs: list[SlurmJob], rate: Rate) -> None:
    """Finished jobs and what they cost; running ones are left out (their cost is not final)."""
    cost = jobs_cost(jobs, rate)
    table = Table("job", "name", "nodes", "elapsed", "state", "node-hours", "USD")
    for job in cost.finished:
        hours, rest = divmod(job.elapsed_seconds, 3600)
        elapsed = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        usd = f"{cost.job_usd(job):,.2f}"
        table.add_row(job.job_id, job.name, str(job.nodes), elapsed, job.state, f"{job.node_hours:.2f}", usd)
    out.print(table)
    note = f" ({cost.unfinished} unfinished job(s) left out)" if cost.unfinished else ""
    out.print(f"{len(cost.finished)} finished job(s), {cost.node_hours:.2f} node-hours: ${cost.usd:,.2f}{note}",
              markup=False)
    out.print(f"price: {rate.basis}", markup=False, style="dim")


@contextmanager
def wait_progress(out: Console) -> Iterator[Callable[[Cluster], None]]:
    """A spinner with nodes up/target; yields the callback each poll reports to."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} nodes"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("waiting", total=None)

        def show(cluster: Cluster) -> None:
            progress.update(
                task,
                description=f"{cluster.name} {cluster.status}",
                completed=sum(g.current_count for g in cluster.groups),
                total=sum(g.target_count for g in cluster.groups),
            )

        yield show


@contextmanager
def byte_progress(out: Console, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bytes-sent bar; yields the callback to report each chunk to."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out) as progress:
        task = progress.add_task(description, total=total)
        yield lambda sent: progress.advance(task, sent)

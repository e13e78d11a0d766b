"""Rich tables for the commands' results; no AWS calls here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hpctl.cluster import Cluster, Node
from hpctl.cost import SlurmJob
from hpctl.validate import Finding, Status

_MARK = {Status.OK: "[green]✓[/]", Status.WARN: "[yellow]![/]", Status.FAIL: "[red]✗[/]"}


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


def sacct_jobs(out: Console, jobs: list[SlurmJob], usd_per_hour: float) -> None:
    table = Table("job", "name", "nodes", "elapsed", "state", "node-hours", "USD")
    for job in jobs:
        hours, rest = divmod(job.elapsed_seconds, 3600)
        table.add_row(
            job.job_id,
            job.name,
            str(job.nodes),
            f"{hours}:{rest // 60:02d}:{rest % 60:02d}",
            job.state,
            f"{job.node_hours:.2f}",
            f"{job.node_hours * usd_per_hour:,.2f}",
        )
    out.print(table)

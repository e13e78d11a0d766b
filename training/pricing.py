"""What a run costs: the dated price table and Slurm accounting records, shared by `hpctl cost` on the
laptop and the report job on the cluster (which installs only training/ and jobs/, so this lives here).

Standard library only: the laptop's `hpctl` imports it without the training dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from training.errors import UserError

PRICES_AS_OF = date(2026, 1, 21)
# EC2 on-demand Linux list prices of the same hardware (instances.vantage.sh data of this date).
# SageMaker HyperPod bills ml.* instances at or above these: the estimate is a floor.
PRICE_SOURCE = (
    "EC2 list price of the same hardware, a floor for HyperPod: pass --price-per-hour for your rate"
)


class PricingError(UserError):
    """A price or accounting record that cannot be used; the message says what to pass instead."""


@dataclass(frozen=True)
class Price:
    instance_type: str
    region: str
    usd_per_hour: float


PRICES: tuple[Price, ...] = tuple(
    Price(instance_type, region, usd)
    for instance_type, usd, regions in (
        ("ml.trn1.32xlarge", 21.50, ("us-east-1", "us-east-2", "us-west-2")),
        ("ml.trn1n.32xlarge", 24.78, ("us-east-1", "us-east-2", "us-west-2")),
        ("ml.c5.xlarge", 0.17, ("us-east-1", "us-east-2", "us-west-2")),
        ("ml.m5.xlarge", 0.192, ("us-east-1", "us-east-2", "us-west-2")),
    )
    for region in regions
)

# One trn1.32xlarge, Llama-3-8B on dolly-15k (packed), 3 epochs: LoRA 53 min, full fine-tuning 90 min.
REFERENCE_SAMPLES_PER_SECOND = {"lora": 3.55, "full": 2.08}


def check_listed(instance_type: str) -> None:
    """The table prices the type somewhere: otherwise no region can, and there is no region to look up."""
    if not any(p.instance_type == instance_type for p in PRICES):
        known = sorted({p.instance_type for p in PRICES})
        raise PricingError(
            f"no price for {instance_type} in the table: pass --price-per-hour (known: {', '.join(known)})"
        )


def price_per_hour(instance_type: str, region: str) -> float:
    for price in PRICES:
        if price.instance_type == instance_type and price.region == region:
            return price.usd_per_hour
    known = sorted({f"{p.instance_type}@{p.region}" for p in PRICES})
    raise PricingError(
        f"no price for {instance_type} in {region}: pass --price-per-hour (known: {', '.join(known)})"
    )


@dataclass(frozen=True)
class Rate:
    instance_type: str
    usd_per_hour: float
    basis: str  # where the number comes from, printed with every result


def rate(instance_type: str, region: str | None, override: float | None = None) -> Rate:
    """The user's own rate when given, else the table's for the region."""
    if override is not None:
        if override <= 0:
            raise PricingError(f"--price-per-hour must be positive, got {override:g}")
        return Rate(instance_type, override, f"{instance_type} at ${override:,.2f}/h (your rate)")
    check_listed(instance_type)
    if region is None:  # no region needed when the table has one price for the type everywhere it lists it
        listed = {p.region: p.usd_per_hour for p in PRICES if p.instance_type == instance_type}
        if len(set(listed.values())) != 1:
            raise PricingError(
                f"{instance_type} has no single price in the table: pass --region or --price-per-hour"
            )
        usd = next(iter(listed.values()))
        where = f"in {', '.join(sorted(listed))} (no region given)"
    else:
        usd = price_per_hour(instance_type, region)
        where = f"in {region}"
    return Rate(instance_type, usd, f"{instance_type} at ${usd:,.2f}/h {where}, {PRICES_AS_OF} ({PRICE_SOURCE})")


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    name: str
    nodes: int
    elapsed_seconds: int
    state: str

    @property
    def node_hours(self) -> float:
        return self.nodes * self.elapsed_seconds / 3600.0

    @property
    def finished(self) -> bool:
        return self.state not in {"RUNNING", "PENDING", "REQUEUED", "RESIZING", "SUSPENDED"}


SACCT_FORMAT = "JobID,JobName,NNodes,ElapsedRaw,State"


def parse_sacct(lines: Iterable[str]) -> list[SlurmJob]:
    """Jobs from `sacct --parsable2 --noheader --format=JobID,JobName,NNodes,ElapsedRaw,State`.

    Steps (`123.batch`, `123.0`) run inside their job's allocation, so only jobs count.
    """
    jobs: list[SlurmJob] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split("|")
        if len(fields) != 5:
            raise PricingError(
                f"sacct line {number}: want 5 fields ({SACCT_FORMAT}), got {len(fields)}: {_shown(line)}"
            )
        job_id, name, nodes, elapsed, state = fields
        if "." in job_id:
            continue
        if not nodes.isdigit() or not elapsed.isdigit():
            raise PricingError(f"sacct line {number}: NNodes and ElapsedRaw must be whole numbers: {_shown(line)}")
        # "CANCELLED by 1000" -> CANCELLED
        jobs.append(
            SlurmJob(job_id, name, int(nodes), int(elapsed), state.split()[0] if state else "UNKNOWN")
        )
    return jobs


def _shown(line: str, limit: int = 80) -> str:
    """A line quoted for an error message, cut short: a wrong file can have lines of any length."""
    return repr(line) if len(line) <= limit else repr(line[:limit]) + f"... ({len(line)} characters)"


@dataclass(frozen=True)
class JobsCost:
    """Finished jobs and their cost at one rate; running ones are left out (their cost is not final)."""

    finished: list[SlurmJob]
    unfinished: int
    rate: Rate

    @property
    def node_hours(self) -> float:
        return sum(j.node_hours for j in self.finished)

    @property
    def usd(self) -> float:
        return self.node_hours * self.rate.usd_per_hour

    def job_usd(self, job: SlurmJob) -> float:
        return job.node_hours * self.rate.usd_per_hour


def jobs_cost(jobs: list[SlurmJob], job_rate: Rate) -> JobsCost:
    done = [j for j in jobs if j.finished]
    return JobsCost(done, len(jobs) - len(done), job_rate)

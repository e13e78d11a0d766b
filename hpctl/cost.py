"""Cost of a fine-tuning run: estimated before it starts, or measured from `sacct` after.

Prices are a small dated table, not a live lookup, so the estimate works offline
and the number it prints can be traced to a source. The table and the sacct parser
live in training.pricing, which the report job on the cluster uses too; here they
raise UsageError, the CLI's one-line error with exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

from hpctl.aws import UsageError
from training import pricing
from training.pricing import (
    PRICE_SOURCE,
    PRICES,
    PRICES_AS_OF,
    REFERENCE_SAMPLES_PER_SECOND,
    SACCT_FORMAT,
    JobsCost,
    Price,
    Rate,
    SlurmJob,
    jobs_cost,
)

__all__ = [
    "PRICES", "PRICES_AS_OF", "PRICE_SOURCE", "REFERENCE_SAMPLES_PER_SECOND", "SACCT_FORMAT", "JobsCost", "Price",
    "Rate", "SlurmJob", "check_listed", "jobs_cost", "parse_sacct", "price_per_hour", "rate", "read_sacct",
    "training_hours",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _as_usage_error(func: Callable[_P, _T]) -> Callable[_P, _T]:
    @wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return func(*args, **kwargs)
        except pricing.PricingError as exc:
            raise UsageError(str(exc)) from None

    return wrapper


check_listed = _as_usage_error(pricing.check_listed)
price_per_hour = _as_usage_error(pricing.price_per_hour)
rate = _as_usage_error(pricing.rate)
parse_sacct = _as_usage_error(pricing.parse_sacct)


def training_hours(*, samples: int, epochs: float, samples_per_second: float, instances: int) -> float:
    """Wall hours if throughput scales linearly with instances (data parallel; optimistic)."""
    if samples <= 0 or epochs <= 0 or samples_per_second <= 0 or instances <= 0:
        raise UsageError("--samples, --epochs, --samples-per-second and --count must all be positive")
    return samples * epochs / (samples_per_second * instances) / 3600.0


def read_sacct(path: Path) -> list[SlurmJob]:
    """`path` may be '-' for stdin (e.g. `ssh cluster sacct ... | hpctl cost --sacct -`)."""
    try:
        if str(path) == "-":
            return parse_sacct(sys.stdin)
        with path.open(encoding="utf-8") as handle:
            return parse_sacct(handle)
    except OSError as exc:
        raise UsageError(f"--sacct {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--sacct {path}: not text; save the output of `sacct --parsable2 --noheader "
                         f"--format={SACCT_FORMAT}`") from None

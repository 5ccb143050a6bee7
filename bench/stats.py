"""Small statistics helpers: every figure is reported as median, p95 and n."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), like numpy's default; None when empty."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Iterable[float | None], digits: int = 1) -> dict:
    """{"median", "p95", "p99", "min", "max", "n"} of the non-missing values (ms, rounded)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "median": r(percentile(xs, 50)),
        "p95": r(percentile(xs, 95)),
        "p99": r(percentile(xs, 99)),
        "min": r(min(xs)) if xs else None,
        "max": r(max(xs)) if xs else None,
        "n": len(xs),
    }


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)

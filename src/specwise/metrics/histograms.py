"""Prometheus histograms over a window: bucket deltas between two scrapes and quantiles from them.

A latency percentile "over the last N seconds" is not in any single scrape: the ``…_bucket`` series are cumulative
since the server started. The window's distribution is the per-``le`` difference of two scrapes, summed over every
other label (``engine`` for data parallel), and its quantiles follow Prometheus's own ``histogram_quantile``: linear
interpolation inside the bucket that holds the rank, the lower edge of the first bucket taken as 0, and the
highest finite bucket's upper edge returned when the rank falls in the ``+Inf`` bucket (prometheus/promql
``quantile.go``). A bucket that decreased means the server restarted; its post-restart count is taken as the delta,
as :func:`specwise.metrics.adapters.counter_delta` does for counters.
"""

from __future__ import annotations

import math

from pydantic import Field

from specwise.metrics.prometheus import MetricsSnapshot
from specwise.schemas.base import SpecwiseModel

__all__ = ["HistogramDelta", "histogram_delta", "histogram_quantile"]


class HistogramDelta(SpecwiseModel):
    """Cumulative bucket counts of one histogram over a window, summed over series."""

    name: str
    buckets: list[tuple[float, float]] = Field(description="(upper bound le, cumulative count), ascending le")
    count: float = Field(description="observations in the window (the +Inf bucket)")
    sum: float | None = Field(None, description="d(…_sum): total observed value in the window")
    counter_reset: bool = False

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.sum is not None and self.count > 0 else None


def _le(labels: dict[str, str]) -> float | None:
    try:
        return float(labels["le"])
    except (KeyError, ValueError):
        return None


def _series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def histogram_delta(before: MetricsSnapshot | None, after: MetricsSnapshot, name: str) -> HistogramDelta | None:
    """``name``'s buckets in ``after`` minus those in ``before`` (None = since start); None when ``after`` lacks it.

    ``name`` is the histogram's base name (``vllm:time_to_first_token_seconds``), without ``_bucket``.
    """
    after_series = after.samples.get(name + "_bucket", [])
    if not after_series:
        return None
    prev = {} if before is None else {_series_key(s.labels): s.value for s in before.samples.get(name + "_bucket", [])}
    by_le: dict[float, float] = {}
    reset = False
    for s in after_series:
        le = _le(s.labels)
        if le is None:
            continue
        b = prev.get(_series_key(s.labels), 0.0)
        d = s.value if s.value < b else s.value - b
        reset |= s.value < b
        by_le[le] = by_le.get(le, 0.0) + d
    if not by_le:
        return None
    buckets = sorted(by_le.items())
    # Summed deltas of cumulative buckets stay cumulative unless a reset hit only some series; enforce monotonicity so
    # the quantile search never walks backwards.
    running = 0.0
    fixed: list[tuple[float, float]] = []
    for le, c in buckets:
        running = max(running, c)
        fixed.append((le, running))
    total = fixed[-1][1]  # +Inf is the last bucket when present; otherwise the widest one is all we know
    sum_after = after.total(name + "_sum")
    sum_before = before.total(name + "_sum") if before is not None else None
    window_sum = None
    if sum_after is not None:
        window_sum = sum_after if sum_before is None or sum_after < sum_before else sum_after - sum_before
    return HistogramDelta(name=name, buckets=fixed, count=total, sum=window_sum, counter_reset=reset)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus ``histogram_quantile`` on cumulative (le, count) pairs; None when there are no observations."""
    if not buckets or not 0.0 <= q <= 1.0:
        return None
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(le):
                # rank in the +Inf bucket: Prometheus returns the highest finite upper bound
                return buckets[i - 1][0] if i > 0 else None
            if i == 0 and le <= 0:
                return le
            in_bucket = count - lower_count
            if in_bucket <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = le, count
    return buckets[-1][0] if not math.isinf(buckets[-1][0]) else None

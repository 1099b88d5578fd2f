"""Baseline vs speculative at one load and temperature: one definition for simulated and measured runs.

A speedup is baseline latency / speculative latency at a percentile (> 1: speculation is faster), for
TPOT P50/P99, E2E P50/P99 and TTFT P50; the throughput ratio is speculative / baseline output tokens per
second (summed over repeats). With request records on both sides (bench) each speedup carries a 95 % CI from
a paired two-stage bootstrap (:func:`specwise.stats.paired_block_ratio_ci`): repeats with replacement, then
send-time blocks of at most 2 s within each, the same repeats and blocks for both arms (they share the schedule),
because requests sent in the same seconds meet the same server state and are not independent. With several
repeats its value is the median of the per-repeat speedups (drift between repeats shows in ``per_repeat``). With
summaries only (simulate: one deterministic run per load) the speedup is the ratio of the two summaries'
percentiles and has no CI.

Inputs are :class:`ArmRun` s, one per repeat of one arm at one load; the load axis and temperature of the
comparison are the baseline cells'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from specwise.schemas.results import CellSummary, Comparison, RequestRecord, SpeedupCI
from specwise.stats import paired_block_ratio_ci, paired_time_blocks, percentile

__all__ = ["ArmRun", "METRICS", "compare_arms", "ratio"]


@dataclass
class ArmRun:
    """One repeat of one arm at one load: its summary and, for measured runs, its request records."""

    summary: CellSummary
    records: list[RequestRecord] | None = None
    repeat: int = 0


# speedup field -> (summary field, record value, percentile)
METRICS: dict[str, tuple[str, Callable[[RequestRecord], float | None], float]] = {
    "speedup_tpot_p50": ("tpot_p50_s", lambda r: r.tpot_s, 50),
    "speedup_tpot_p99": ("tpot_p99_s", lambda r: r.tpot_s, 99),
    "speedup_e2e_p50": ("e2e_p50_s", lambda r: r.e2e_s, 50),
    "speedup_e2e_p99": ("e2e_p99_s", lambda r: r.e2e_s, 99),
    "speedup_ttft_p50": ("ttft_p50_s", lambda r: r.ttft_s, 50),
}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is 0."""
    return a / b if a is not None and b else None


def _values(runs: Sequence[ArmRun], metric: Callable[[RequestRecord], float | None]) -> list[float]:
    return [v for run in runs for r in (run.records or []) if r.ok for v in [metric(r)] if v is not None]


def _sent(runs: Sequence[ArmRun], repeat: int, metric: Callable[[RequestRecord], float | None]
          ) -> list[tuple[float | None, float | None]]:
    """(send time, value) of one repeat's successful requests; request order stands in for send times where a
    record has none (hand-built records)."""
    rows = [(r.sent_s, metric(r)) for run in runs if run.repeat == repeat for r in (run.records or []) if r.ok]
    if any(t is None for t, _ in rows):
        rows = [(float(i), v) for i, (_, v) in enumerate(rows)]
    return rows


def compare_arms(baseline: Sequence[ArmRun], speculative: Sequence[ArmRun], *, baseline_role: str = "baseline",
                 seed: int = 0) -> Comparison:
    """The comparison of two arms at one load (each a list of repeats); see the module docstring."""
    if not baseline or not speculative:
        raise ValueError("a comparison needs at least one run of each arm")
    first = baseline[0].summary
    with_records = all(r.records is not None for r in (*baseline, *speculative))
    by_rep_b = {r.repeat: r for r in baseline}
    by_rep_s = {r.repeat: r for r in speculative}
    repeats = sorted(set(by_rep_b) & set(by_rep_s))
    speedups: dict[str, SpeedupCI] = {}
    per_repeat: dict[str, list[float | None]] = {}
    for name, (field_name, metric, q) in METRICS.items():
        short = name.removeprefix("speedup_")
        if with_records:
            # the interval pairs repeat r of both arms (same schedule); the point is over every request
            blocks_b, blocks_s = paired_time_blocks([_sent(baseline, r, metric) for r in repeats],
                                                    [_sent(speculative, r, metric) for r in repeats])
            _, low, high = paired_block_ratio_ci(blocks_b, blocks_s, q=q, seed=seed)
            point = ratio(percentile(_values(baseline, metric), q), percentile(_values(speculative, metric), q))
            if len(repeats) > 1:
                vals = []
                for rep in repeats:
                    pb = percentile(_values([by_rep_b[rep]], metric), q)
                    ps = percentile(_values([by_rep_s[rep]], metric), q)
                    vals.append(pb / ps if pb is not None and ps else None)
                per_repeat[short] = vals
                finite = [v for v in vals if v is not None]
                point = float(np.median(finite)) if finite else point
            speedups[name] = SpeedupCI(value=point, ci_low=low, ci_high=high)
        else:
            vals = [ratio(getattr(by_rep_b[rep].summary, field_name), getattr(by_rep_s[rep].summary, field_name))
                    for rep in repeats]
            if len(repeats) > 1:
                per_repeat[short] = vals
            finite = [v for v in vals if v is not None]
            speedups[name] = SpeedupCI(value=float(np.median(finite)) if finite else None)
    return Comparison(
        qps=first.qps, load_kind=first.load_kind, load=first.load, temperature=first.temperature,
        baseline_role=baseline_role, repeats=max(1, len(repeats)), per_repeat=per_repeat,
        throughput_ratio=ratio(_throughput(speculative), _throughput(baseline)), **speedups,
    )


def _throughput(runs: Sequence[ArmRun]) -> float | None:
    """Output tokens per second summed over repeats; None when no run has one."""
    values = [r.summary.output_tokens_per_s for r in runs if r.summary.output_tokens_per_s is not None]
    return float(sum(values)) if values else None

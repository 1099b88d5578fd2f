"""Declarative definitions of the latency and acceptance metrics specwise reports.

Each metric is a small record: name, unit, definition (the formula) and what it depends on, so the
report can print the definition next to every number. :func:`summarize_cell` turns request records
(measured or simulated alike) into a :class:`~specwise.schemas.results.CellSummary`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import CellSummary, RequestRecord, Role
from specwise.stats import percentile

__all__ = ["METRICS", "MetricDefinition", "STEP_WINDOW_MIN_GAPS", "STEP_WINDOW_MIN_WINDOWS", "STEP_WINDOW_S",
           "SaturationVerdict", "achieved_completion_rate", "detect_saturation", "itl_arrays",
           "per_request_acceptance", "step_windows", "summarize_cell"]

# Steadiness of the step time within a cell. On the H200 rounds of issue 12 a host-bound speculative server held
# one step speed for seconds and then another (1.5-2x apart); 1-s windows resolve that while still holding a
# few dozen steps each at 2 req/s.
STEP_WINDOW_S = 1.0
STEP_WINDOW_MIN_GAPS = 5
STEP_WINDOW_MIN_WINDOWS = 5


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    unit: str
    definition: str
    depends_on: tuple[str, ...] = ()


METRICS: dict[str, MetricDefinition] = {
    m.name: m
    for m in [
        MetricDefinition("ttft", "s", "time from sending the request to the first chunk carrying generated output"),
        MetricDefinition(
            "tpot", "s/token", "(e2e - ttft) / (output_tokens - 1): per output token, excluding the first",
            ("e2e", "ttft", "output_tokens"),
        ),
        MetricDefinition(
            "itl_per_chunk", "s",
            "gap between consecutive content chunks (vLLM bench's ITL; with speculation one chunk = one engine step)",
        ),
        MetricDefinition(
            "itl_per_token", "s/token",
            "gap between consecutive chunks divided by the tokens the later chunk carries (per-token ITL)",
            ("itl_per_chunk", "chunk_tokens"),
        ),
        MetricDefinition("e2e", "s", "time from sending the request to the last chunk carrying generated output"),
        MetricDefinition(
            "chunks_same_read_share", "fraction",
            "inter-chunk gaps of exactly 0 s / all inter-chunk gaps: chunks that arrived in the same socket read as "
            "the chunk before them (bunched server output or a starved client); ITL/TPOT understate steps there",
            ("itl_per_chunk",),
        ),
        MetricDefinition(
            "step_window_spread", "ratio",
            "step_window_p90 / step_window_p10: the median inter-chunk gap of the chunks arriving in each "
            f"{STEP_WINDOW_S:g}-s window of the cell (windows with at least {STEP_WINDOW_MIN_GAPS} non-zero gaps, at "
            f"least {STEP_WINDOW_MIN_WINDOWS} windows, repeats kept apart), then its 90th over its 10th percentile "
            "across windows: how steady the engine's step time was during the cell. 1.0-1.1 for a steady server "
            "below saturation; above it the server switched between step speeds (or the load swung the batch)",
            ("itl_per_chunk",),
        ),
        MetricDefinition(
            "output_tokens_per_s", "token/s",
            "sum of output tokens of successful requests / (last completion - first send) of the phase",
        ),
        MetricDefinition(
            "acceptance_rate_metrics", "fraction",
            "server /metrics delta over the phase: d(spec_decode_num_accepted_tokens) / d(spec_decode_num_draft_tokens)",
        ),
        MetricDefinition(
            "mean_acceptance_length_metrics", "tokens/step",
            "server /metrics delta: 1 + d(num_accepted_tokens) / d(num_drafts) (includes the bonus token)",
        ),
        MetricDefinition(
            "acceptance_rate_per_request", "fraction",
            "per request: server per-request draft_acceptance_rate when returned (vLLM 0.29+), else "
            "(mean tokens per chunk - 1) / k from the stream (valid only when chunks are single engine steps)",
        ),
    ]
}


def itl_arrays(record: RequestRecord) -> tuple[np.ndarray, np.ndarray]:
    """(per-chunk gaps, per-token gaps) of one request; the first chunk (TTFT) is excluded."""
    offsets = np.asarray(record.chunk_offsets_s, dtype=float)
    if offsets.size < 2:
        return np.empty(0), np.empty(0)
    gaps = np.diff(offsets)
    tokens = np.asarray(record.chunk_tokens[1:], dtype=float) if record.chunk_tokens else np.ones(gaps.size)
    tokens = np.where(tokens > 0, tokens, 1.0)
    return gaps, gaps / tokens


def step_windows(records: Iterable[RequestRecord]) -> tuple[float | None, float | None, int]:
    """(p10, p90, windows) of the per-window median inter-chunk gap; see ``step_window_spread`` in METRICS.

    A window is one repeat's ``STEP_WINDOW_S`` seconds of the cell's clock (chunk arrival = ``sent_s`` + offset);
    zero gaps (two chunks in one socket read) say nothing about the step and are left out. (None, None, n) when
    fewer than ``STEP_WINDOW_MIN_WINDOWS`` windows hold enough gaps."""
    windows: dict[tuple[int, int], list[float]] = {}
    for r in records:
        if not r.ok or r.sent_s is None or len(r.chunk_offsets_s) < 2:
            continue
        gaps, _ = itl_arrays(r)
        for at, gap in zip(r.sent_s + np.asarray(r.chunk_offsets_s[1:], dtype=float), gaps):
            if gap > 0:
                windows.setdefault((r.repeat, int(at // STEP_WINDOW_S)), []).append(float(gap))
    medians = [float(np.median(g)) for g in windows.values() if len(g) >= STEP_WINDOW_MIN_GAPS]
    if len(medians) < STEP_WINDOW_MIN_WINDOWS:
        return None, None, len(medians)
    p10, p90 = np.percentile(medians, [10, 90])
    return float(p10), float(p90), len(medians)


def per_request_acceptance(record: RequestRecord, k: int | None) -> tuple[float | None, float | None, str | None]:
    """(acceptance rate, mean acceptance length, source) of one request."""
    if record.server_spec is not None and record.server_spec.draft_acceptance_rate is not None:
        return (record.server_spec.draft_acceptance_rate, record.server_spec.mean_acceptance_length, "server")
    if record.accepted_per_step:
        steps = np.asarray(record.accepted_per_step, dtype=float)
        rate = float(steps.mean() / k) if k else None
        return rate, float(1.0 + steps.mean()), "engine"
    if not k or len(record.chunk_tokens) < 2:
        return None, None, None
    if not record.chunk_estimate_safe:
        # Chunks merged engine steps (busy API server, --stream-interval) or tokens were not counted
        # exactly: tokens per chunk is then not accepted tokens per step.
        return None, None, None
    # The first chunk is prefill (+ maybe a role-only chunk); decode steps follow.
    decode_chunks = [t for t in record.chunk_tokens[1:] if t > 0]
    if not decode_chunks:
        return None, None, None
    length = float(np.mean(decode_chunks))
    return max(0.0, min(1.0, (length - 1.0) / k)), length, "chunks"


def summarize_cell(
    records: Iterable[RequestRecord],
    *,
    role: Role,
    source: Source,
    qps: float | None,
    temperature: float | None = None,
    category: str | None = None,
    k: int | None = None,
    duration_s: float | None = None,
) -> CellSummary:
    """Aggregate request records of one phase into a :class:`CellSummary`."""
    recs = list(records)
    ok = [r for r in recs if r.ok]
    failed = [r for r in recs if not r.ok]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    e2e = [r.e2e_s for r in ok if r.e2e_s is not None]
    tpot = [t for t in (r.tpot_s for r in ok) if t is not None]
    chunk_gaps: list[np.ndarray] = []
    token_gaps: list[np.ndarray] = []
    tokens_per_chunk: list[float] = []
    for r in ok:
        cg, tg = itl_arrays(r)
        chunk_gaps.append(cg)
        token_gaps.append(tg)
        tokens_per_chunk.extend(float(t) for t in r.chunk_tokens if t > 0)
    all_chunk = np.concatenate(chunk_gaps) if chunk_gaps else np.empty(0)
    all_token = np.concatenate(token_gaps) if token_gaps else np.empty(0)

    rates, lengths, sources = [], [], set()
    if role == "speculative":
        for r in ok:
            rate, length, src = per_request_acceptance(r, k)
            if rate is not None:
                rates.append(rate)
                sources.add(src)
            if length is not None:
                lengths.append(length)

    if duration_s is None:
        starts = [r.sent_s for r in recs if r.sent_s is not None]
        ends = [r.sent_s + r.e2e_s for r in ok if r.sent_s is not None and r.e2e_s is not None]
        duration_s = (max(ends) - min(starts)) if starts and ends else 0.0
    out_tokens = sum(r.output_tokens for r in ok)
    step_p10, step_p90, step_n = step_windows(ok)
    errors: dict[str, int] = {}
    for r in failed:
        errors[r.error_kind or "error"] = errors.get(r.error_kind or "error", 0) + 1

    return CellSummary(
        role=role,
        source=source,
        qps=qps,
        temperature=temperature,
        category=category,
        duration_s=duration_s,
        requests_ok=len(ok),
        requests_failed=len(failed),
        ttft_p50_s=percentile(ttft, 50),
        ttft_p95_s=percentile(ttft, 95),
        ttft_p99_s=percentile(ttft, 99),
        tpot_p50_s=percentile(tpot, 50),
        tpot_p95_s=percentile(tpot, 95),
        tpot_p99_s=percentile(tpot, 99),
        itl_per_token_p50_s=percentile(all_token, 50),
        itl_per_token_p99_s=percentile(all_token, 99),
        itl_per_chunk_p50_s=percentile(all_chunk, 50),
        itl_per_chunk_p99_s=percentile(all_chunk, 99),
        e2e_p50_s=percentile(e2e, 50),
        e2e_p95_s=percentile(e2e, 95),
        e2e_p99_s=percentile(e2e, 99),
        output_tokens_per_s=(out_tokens / duration_s) if duration_s and duration_s > 0 else None,
        requests_per_s=(len(ok) / duration_s) if duration_s and duration_s > 0 else None,
        mean_tokens_per_chunk=float(np.mean(tokens_per_chunk)) if tokens_per_chunk else None,
        acceptance_rate_per_request_p10=percentile(rates, 10),
        acceptance_rate_per_request_p50=percentile(rates, 50),
        acceptance_rate_per_request_p90=percentile(rates, 90),
        acceptance_length_per_request_p50=percentile(lengths, 50),
        acceptance_source_per_request=("server" if "server" in sources else next(iter(sources), None)),
        errors_by_kind=errors,
        # The client stamps each socket read once, so a gap of exactly zero means "same read" (see bench.client).
        chunks_same_read_share=float(np.mean(all_chunk == 0.0)) if all_chunk.size else None,
        step_window_p10_s=step_p10,
        step_window_p90_s=step_p90,
        step_windows=step_n,
    )


class SaturationVerdict(SpecwiseModel):
    """Whether a phase ran past what the server sustains (queue/TTFT growing without bound)."""

    saturated: bool
    reasons: list[str] = Field(default_factory=list)
    ttft_slope: float | None = Field(None, description="least-squares d(TTFT)/d(send time), s per s")
    ttft_growth: float | None = Field(None, description="median TTFT of the last third / first third")
    completion_ratio: float | None = Field(None, description="achieved completion rate / offered rate")


def achieved_completion_rate(sent_s: Sequence[float], e2e_s: Sequence[float]) -> float | None:
    """Completions per second while requests were still arriving, comparable with the offered rate.

    Completions by the last send, over the time from (first send + median latency) to the last send: a
    server that keeps up completes by the last send what arrived up to one typical latency before it,
    so the ratio to the offered rate is ~1 whatever the latency; an overloaded one completes at its
    capacity. (Counting completions up to the last one instead would divide by the arrival window plus
    the longest request and call a long-output workload saturated.) None when there are fewer than 3
    finished requests or the arrival window is shorter than the median latency (nothing to judge).
    """
    pairs = [(s, e) for s, e in zip(sent_s, e2e_s) if s is not None and e is not None]
    if len(pairs) < 3:
        return None
    sends = np.asarray([p[0] for p in pairs], dtype=float)
    ends = sends + np.asarray([p[1] for p in pairs], dtype=float)
    first, last = float(sends.min()), float(sends.max())
    window = last - (first + float(np.median(ends - sends)))
    if window <= 0:
        return None
    return float(np.sum(ends <= last)) / window


def detect_saturation(
    sent_s: Sequence[float],
    ttft_s: Sequence[float],
    offered_rate: float | None = None,
    achieved_rate: float | None = None,
    waiting_slope_per_s: float | None = None,
    waiting_max: float | None = None,
    *,
    unfinished: int = 0,
    slope_threshold: float = 0.05,
    growth_threshold: float = 2.0,
    min_growth_s: float = 0.05,
) -> SaturationVerdict:
    """One definition of "saturated" for simulated and measured phases (``CellSummary.saturated``).

    A stable server has TTFT flat in send time; an overloaded one queues, so TTFT rises roughly linearly
    with send time (slope ≈ 1 - capacity/rate). Saturated when any of:

    * TTFT both trends up (slope > ``slope_threshold`` s/s) and grows (median of the last third of
      requests by send time / the first third > ``growth_threshold``, and by more than ``min_growth_s``,
      so millisecond jitter on an idle server is not a queue); needs 6 requests;
    * the server's waiting queue grows steadily (> 0.5 requests/s, at least 5 waiting; /metrics gauges,
      measured runs only);
    * completions fall below 80 % of the offered rate (open loop);
    * requests were left unfinished when the phase ended (simulated runs stop at a time horizon).
    """
    reasons: list[str] = []
    slope = growth = ratio = None
    pts = [(s, t) for s, t in zip(sent_s, ttft_s) if s is not None and t is not None]
    if len(pts) >= 6:
        pts.sort()
        xs, ys = np.asarray(pts, dtype=float).T
        if np.ptp(xs) > 0:
            slope = float(np.polyfit(xs, ys, 1)[0])
        third = len(ys) // 3
        first, last = float(np.median(ys[:third])), float(np.median(ys[-third:]))
        growth = last / first if first > 0 else None
        grew = growth is not None and growth > growth_threshold and last - first > min_growth_s
        if slope is not None and slope > slope_threshold and grew:
            reasons.append(f"TTFT grows with send time ({slope:.3f} s/s; last third {growth:.1f}x the first)")
    if waiting_slope_per_s is not None and waiting_max is not None and waiting_slope_per_s > 0.5 and waiting_max >= 5:
        reasons.append(f"server queue grows ({waiting_slope_per_s:.2f} waiting requests/s, max {waiting_max:.0f})")
    if offered_rate and achieved_rate is not None:
        ratio = achieved_rate / offered_rate
        if ratio < 0.8:
            reasons.append(f"completions {achieved_rate:.2f} req/s < 80% of offered {offered_rate:.2f} req/s")
    if unfinished:
        reasons.append(f"{unfinished} requests unfinished when the phase ended")
    return SaturationVerdict(
        saturated=bool(reasons), reasons=reasons, ttft_slope=slope, ttft_growth=growth, completion_ratio=ratio
    )

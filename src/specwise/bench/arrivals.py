"""Arrival schedules for a bench cell, and the saturation test that ends an automatic rate sweep.

Open-loop schedules follow ``vllm bench serve`` (vllm-speculative-decoding.md §4): inter-arrival times
~ Gamma(shape=b, scale=1/(R·b)); b=1 is Poisson, b<1 burstier, b>1 more regular, constant is b=inf
(every gap 1/R). Like vLLM without ramp-up, the schedule is rescaled so the last arrival lands at N/R,
so every rate's cell has the intended mean rate exactly. A schedule is a pure function of
(spec, n, seed): both arms of an A/B run get the same send times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel

__all__ = [
    "ArrivalSpec",
    "SaturationVerdict",
    "detect_saturation",
    "schedule",
    "sweep_rates",
]

ArrivalKind = Literal["poisson", "constant", "gamma", "closed_loop"]


class ArrivalSpec(SpecwiseModel):
    """How requests of one cell arrive. ``rate`` in requests/s (open loop); ``concurrency`` for closed loop."""

    kind: ArrivalKind = "poisson"
    rate: float | None = Field(None, gt=0, description="requests per second (open loop)")
    burstiness: float = Field(1.0, gt=0, description="gamma shape b: 1 = Poisson, <1 burstier, >1 smoother")
    concurrency: int | None = Field(None, ge=1, description="closed loop: requests kept in flight")

    @model_validator(mode="after")
    def _check(self) -> ArrivalSpec:
        if self.kind == "closed_loop" and self.concurrency is None:
            raise ValueError("closed_loop arrivals need concurrency")
        if self.kind != "closed_loop" and self.rate is None:
            raise ValueError(f"{self.kind} arrivals need a rate")
        return self

    @property
    def label(self) -> str:
        if self.kind == "closed_loop":
            return f"concurrency={self.concurrency}"
        extra = f", b={self.burstiness:g}" if self.kind == "gamma" else ""
        return f"{self.kind} {self.rate:g} req/s{extra}"


def schedule(spec: ArrivalSpec, n: int, seed: int) -> list[float]:
    """Send offsets (seconds from cell start) of ``n`` requests; all zeros for closed loop (the client paces)."""
    if n <= 0:
        return []
    if spec.kind == "closed_loop":
        return [0.0] * n
    rate = float(spec.rate)  # type: ignore[arg-type]
    if spec.kind == "constant":
        gaps = np.full(n, 1.0 / rate)
    else:
        shape = 1.0 if spec.kind == "poisson" else spec.burstiness
        rng = np.random.default_rng(seed)
        gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n)
    # The first request goes at t=0, like vLLM's client; the rest follow the gaps.
    times = np.concatenate([[0.0], np.cumsum(gaps[:-1])]) if n > 1 else np.zeros(1)
    target_last = (n - 1) / rate
    if n > 1 and times[-1] > 0:
        times = times * (target_last / times[-1])
    return [float(t) for t in times]


def requests_for_duration(spec: ArrivalSpec, duration_s: float) -> int:
    """How many requests a ``duration_s`` open-loop cell sends (closed loop: the caller stops on time)."""
    if spec.kind == "closed_loop":
        raise UserError("--duration with closed-loop arrivals: give --num-requests instead")
    return max(1, math.ceil(float(spec.rate) * duration_s))  # type: ignore[arg-type]


def sweep_rates(start: float = 1.0, factor: float = 2.0, max_rate: float = 1024.0) -> Iterator[float]:
    """Rates for an automatic sweep: start, start·factor, … (the runner stops at saturation)."""
    if start <= 0 or factor <= 1:
        raise UserError("sweep needs a start rate > 0 and a growth factor > 1")
    r = start
    while r <= max_rate:
        yield r
        r *= factor


class SaturationVerdict(SpecwiseModel):
    """Whether a cell ran past what the server sustains (queue/TTFT growing without bound)."""

    saturated: bool
    reasons: list[str] = Field(default_factory=list)
    ttft_slope: float | None = Field(None, description="least-squares d(TTFT)/d(send time), s per s")
    ttft_growth: float | None = Field(None, description="median TTFT of the last third / first third")
    completion_ratio: float | None = Field(None, description="achieved completion rate / offered rate")


def detect_saturation(
    sent_s: Sequence[float],
    ttft_s: Sequence[float],
    offered_rate: float | None = None,
    achieved_rate: float | None = None,
    waiting_slope_per_s: float | None = None,
    waiting_max: float | None = None,
    *,
    slope_threshold: float = 0.05,
    growth_threshold: float = 2.0,
    min_growth_s: float = 0.05,
) -> SaturationVerdict:
    """Queue growth test. A stable server has TTFT flat in send time; an overloaded one queues, so TTFT
    rises roughly linearly with send time (slope ≈ 1 - capacity/rate). Saturated when TTFT both trends
    up (slope > ``slope_threshold`` s/s) and grows (last third / first third > ``growth_threshold``, and by
    more than ``min_growth_s``, so millisecond jitter on an idle server is not a queue), when the waiting queue grows steadily, or when completions fall well short of the offered rate.
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
    return SaturationVerdict(
        saturated=bool(reasons), reasons=reasons, ttft_slope=slope, ttft_growth=growth, completion_ratio=ratio
    )

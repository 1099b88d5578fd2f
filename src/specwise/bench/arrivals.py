"""Arrival schedules of a bench cell: :mod:`specwise.arrivals` (shared with ``simulate``) plus closed loop.

A schedule is a pure function of (spec, n, seed), so both arms of an A/B run get the same send times,
and ``simulate`` with the same seed and rate gets them too (the definition, rescaling included, is in
:mod:`specwise.arrivals`). Closed-loop cells have no schedule: the client keeps ``concurrency``
requests in flight. The saturation test that ends a rate sweep is
:func:`specwise.metrics.definitions.detect_saturation` (one definition for both stages).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from specwise.arrivals import MAX_RATE, MIN_RATE, open_loop_offsets, sweep_rates
from specwise.arrivals import requests_for_duration as _requests_for_duration
from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel

__all__ = ["ArrivalSpec", "requests_for_duration", "schedule", "sweep_rates"]

ArrivalKind = Literal["poisson", "constant", "gamma", "closed_loop"]


class ArrivalSpec(SpecwiseModel):
    """How requests of one cell arrive. ``rate`` in requests/s (open loop); ``concurrency`` for closed loop."""

    kind: ArrivalKind = "poisson"
    rate: float | None = Field(None, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False, description="requests per second")
    burstiness: float = Field(1.0, gt=0, allow_inf_nan=False,
                              description="gamma shape b: 1 = Poisson, <1 burstier, >1 smoother")
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
    return [float(t) for t in open_loop_offsets(spec.kind, spec.rate, n, seed, spec.burstiness)]  # type: ignore


def requests_for_duration(spec: ArrivalSpec, duration_s: float) -> int:
    """How many requests a ``duration_s`` open-loop cell sends (closed loop: the caller stops on time)."""
    if spec.kind == "closed_loop":
        raise UserError("--duration with closed-loop arrivals: give --num-requests instead")
    return _requests_for_duration(spec.rate, duration_s)  # type: ignore[arg-type]

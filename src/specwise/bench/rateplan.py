"""Which load a bench runs next: a fixed list of rates, or a sweep that raises the rate until the server saturates.

The runner asks ``plan.next(previous)`` after every load (all repeats and temperatures of it, both arms
when they alternate) and stops when it answers ``None``; ``previous`` says whether any cell at that
load saturated. The plan, not the runner's loops, owns "stop the sweep at saturation" (one place, as
GuideLLM's sweep profile decides its next rate from the last benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from specwise.arrivals import sweep_rates

__all__ = ["Load", "LoadOutcome", "RatePlan"]


@dataclass(frozen=True)
class Load:
    """One load of the plan: ``qps`` req/s, or None for closed loop (concurrency comes from the config)."""

    qps: float | None


@dataclass(frozen=True)
class LoadOutcome:
    """What happened at a load: whether any of its cells saturated."""

    qps: float | None
    saturated: bool


@dataclass
class RatePlan:
    rates: list[float | None]
    stop_when_saturated: bool = False
    run: list[float | None] = field(default_factory=list)  # loads reported back, in order
    _next_index: int = field(default=0, init=False, repr=False)

    @classmethod
    def fixed(cls, rates: Sequence[float | None]) -> RatePlan:
        return cls(list(rates))

    @classmethod
    def sweep(cls, start: float, factor: float, max_rate: float) -> RatePlan:
        return cls(list(sweep_rates(start, factor, max_rate)), stop_when_saturated=True)

    @classmethod
    def closed_loop(cls) -> RatePlan:
        return cls([None])

    def next(self, previous: LoadOutcome | None = None) -> Load | None:
        """The next load after ``previous`` (None to start), or None when the plan is finished."""
        if previous is not None:
            self.run.append(previous.qps)
            if self.stop_when_saturated and previous.saturated:
                self._next_index = len(self.rates)
        if self._next_index >= len(self.rates):
            return None
        load = Load(self.rates[self._next_index])
        self._next_index += 1
        return load

    def finished_after(self, outcomes: Sequence[LoadOutcome]) -> bool:
        """Whether a fresh copy of this plan, told ``outcomes`` in order, has nothing left to run (resume)."""
        replay = RatePlan(self.rates, self.stop_when_saturated)
        load = replay.next()
        for outcome in outcomes:
            if load is None or load.qps != outcome.qps:
                return False
            load = replay.next(outcome)
        return load is None and bool(outcomes)

    @property
    def peak(self) -> float | None:
        """The highest rate the plan may run (None for closed loop)."""
        return max((r for r in self.rates if r is not None), default=None)

"""Open-loop arrival schedules, one definition for ``simulate`` and ``bench``.

Inter-arrival gaps ~ Gamma(shape=b, scale=1/(R·b)) as in ``vllm bench serve``
(docs/reference/vllm-speculative-decoding.md §4): b = 1 is
Poisson, b < 1 burstier, b > 1 more regular; ``constant`` is every gap 1/R. The first request goes at
t = 0 and request i at the sum of the first i gaps. The schedule is then rescaled so the last of n
arrivals lands at exactly (n-1)/R: every cell's mean rate is the rate asked for, not a Poisson draw
around it (with 100 requests the drawn mean rate is off by ±10 % one time in three, which would move a
crossover between neighbouring rates). Rescaling keeps the shape of the gaps (their coefficient of
variation), only their scale is fixed.

The schedule is a pure function of (kind, rate, n, burstiness, random generator): the same seed and rate
give the same send times in ``simulate`` and in ``bench`` (tests/test_arrivals.py). A caller that draws
more from the same generator afterwards (``simulate`` draws lengths next) gets the same state after n
gamma draws either way. Closed-loop load is not a schedule (the client or engine paces it) and is
handled by each stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np

from specwise.errors import UserError

__all__ = ["MAX_RATE", "MIN_RATE", "OpenLoopKind", "open_loop_offsets", "requests_for_duration", "sweep_rates"]

OpenLoopKind = Literal["poisson", "gamma", "constant"]

# Far above any single deployment (vLLM serves thousands of requests per second at most) and far below
# any useful load test (one request every 17 minutes): the bounds keep a typo (1e300, 1e-300) from
# turning into an overflowing or endless schedule.
MAX_RATE = 1e6
MIN_RATE = 1e-3


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not math.isfinite(rate) or rate < MIN_RATE or rate > MAX_RATE:
        raise UserError(f"request rate {rate!r} must be a finite number > 0, from {MIN_RATE:g} to {MAX_RATE:g} req/s")
    return rate


def open_loop_offsets(kind: OpenLoopKind, rate: float, n: int, rng: np.random.Generator | int,
                      burstiness: float = 1.0) -> np.ndarray:
    """Send offsets (seconds from the phase start) of ``n`` requests at ``rate`` req/s, last one at (n-1)/rate.

    ``rng`` is a seed or a generator; exactly ``n`` gamma draws are taken from it (none for ``constant``).
    """
    rate = _check_rate(rate)
    if n <= 0:
        return np.zeros(0)
    if kind == "constant" or math.isinf(burstiness):
        gaps = np.full(n, 1.0 / rate)
    else:
        shape = 1.0 if kind == "poisson" else float(burstiness)
        if not shape > 0:
            raise UserError(f"burstiness {burstiness!r} must be > 0")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        gaps = gen.gamma(shape, 1.0 / (rate * shape), size=n)
    times = np.concatenate([[0.0], np.cumsum(gaps[:-1])]) if n > 1 else np.zeros(1)
    if n > 1 and times[-1] > 0:
        times = times * (((n - 1) / rate) / times[-1])
    return times


def requests_for_duration(rate: float, duration_s: float) -> int:
    """How many requests an open-loop phase of ``duration_s`` seconds at ``rate`` req/s sends: ceil(rate·duration)."""
    rate = _check_rate(rate)
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise UserError(f"duration {duration_s!r} must be a finite number of seconds > 0")
    return max(1, math.ceil(rate * duration_s))


def sweep_rates(start: float = 1.0, factor: float = 2.0, max_rate: float = 1024.0) -> Iterator[float]:
    """Rates of an automatic sweep: start, start·factor, … up to ``max_rate`` (the caller stops at saturation)."""
    if not (math.isfinite(start) and start > 0 and math.isfinite(factor) and factor > 1 and math.isfinite(max_rate)):
        raise UserError("sweep needs a finite start rate > 0, a growth factor > 1 and a finite maximum")
    r = start
    while r <= max_rate:
        yield r
        r *= factor

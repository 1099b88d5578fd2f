"""Simulated workloads: arrival processes, prompt/output length distributions and request classes.

Open-loop arrivals are :mod:`specwise.arrivals` (the definition bench uses: gamma gaps as ``vllm bench
serve``, rescaled so the last of n arrivals lands at (n-1)/rate; same seed and rate, same schedule).
Closed-loop concurrency keeps ``concurrency`` requests in flight (a new one arrives when one finishes).
A trace replays (timestamp, prompt tokens, output tokens) rows from a JSONL/CSV file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from specwise.arrivals import open_loop_offsets, requests_for_duration
from specwise.errors import UserError
from specwise.rowfiles import numeric_columns, read_rows
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.limits import (
    MAX_CONCURRENCY,
    MAX_DURATION_S,
    MAX_QPS,
    MAX_SIM_REQUESTS,
    MAX_TOKENS,
    MIN_QPS,
    Burstiness,
)


class LengthDist(SpecwiseModel):
    """Token-length distribution: fixed, uniform, normal, lognormal (mean + coefficient of variation) or values."""

    kind: Literal["fixed", "uniform", "normal", "lognormal", "values"] = "fixed"
    mean: float = Field(256, ge=1, le=MAX_TOKENS, allow_inf_nan=False)  # tokens: below 1 is no length
    # 100: a lognormal with cv 100 already puts almost all of its mass near 0 and a tail past any context
    cv: float = Field(0.0, ge=0, le=100, allow_inf_nan=False, description="std-dev / mean (normal, lognormal)")
    low: int = Field(1, ge=1, le=MAX_TOKENS)
    high: int | None = Field(None, ge=1, le=MAX_TOKENS, description="upper clip; uniform: upper bound")
    values: list[int] | None = Field(None, description="kind=values: sampled uniformly with replacement")

    @model_validator(mode="after")
    def _ordered(self) -> LengthDist:
        if self.high is not None and self.high < self.low:
            raise ValueError(f"the upper bound {self.high} is below the lower bound {self.low}")
        return self

    @classmethod
    def parse(cls, text: str) -> LengthDist:
        """``512`` | ``uniform:128:1024`` | ``normal:512:0.3`` | ``lognormal:512:0.8`` (mean, cv)."""
        parts = text.strip().split(":")
        try:
            if len(parts) == 1:
                return cls(kind="fixed", mean=float(parts[0]))
            kind = parts[0]
            if kind == "uniform" and len(parts) == 3:
                lo, hi = int(parts[1]), int(parts[2])
                return cls(kind="uniform", mean=(lo + hi) / 2, low=lo, high=hi)
            if kind in ("normal", "lognormal") and len(parts) == 3:
                return cls(kind=kind, mean=float(parts[1]), cv=float(parts[2]))
        except ValidationError as exc:
            msg = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
            raise UserError(f"length distribution '{text}': {msg}; lengths are 1 to {MAX_TOKENS} tokens, cv 0 to "
                            "100") from None
        except ValueError:
            pass
        raise UserError(
            f"cannot read length distribution '{text}': use N, uniform:LOW:HIGH, normal:MEAN:CV or lognormal:MEAN:CV"
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            out = np.full(n, self.mean)
        elif self.kind == "uniform":
            out = rng.integers(self.low, (self.high or int(2 * self.mean)) + 1, size=n).astype(float)
        elif self.kind == "normal":
            out = rng.normal(self.mean, self.cv * self.mean, size=n)
        elif self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            out = rng.lognormal(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2), size=n)
        else:
            vals = np.asarray(self.values or [int(self.mean)], dtype=float)
            out = vals[rng.integers(0, vals.size, size=n)]
        hi = self.high if self.high is not None else np.inf
        return np.clip(np.rint(out), self.low, hi).astype(np.int64)


class RequestClass(SpecwiseModel):
    """A share of the traffic with its own category and temperature (selects the acceptance class)."""

    category: str = "all"
    temperature: float = Field(0.0, ge=0, le=2.0, allow_inf_nan=False)  # as schemas.limits.Temperature
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


class ArrivalSpec(SpecwiseModel):
    kind: Literal["poisson", "gamma", "constant", "closed", "trace"] = "poisson"
    qps: float | None = Field(None, ge=MIN_QPS, le=MAX_QPS, allow_inf_nan=False,
                              description="requests per second (open loop)")
    burstiness: Burstiness = Field(1.0, description="gamma shape; 1 = Poisson, <1 burstier")
    concurrency: int | None = Field(None, ge=1, le=MAX_CONCURRENCY, description="closed loop: requests kept in flight")

    @model_validator(mode="after")
    def _check(self) -> ArrivalSpec:
        if self.kind in ("poisson", "gamma", "constant") and self.qps is None:
            raise ValueError(f"{self.kind} arrivals need qps")
        if self.kind == "closed" and self.concurrency is None:
            raise ValueError("closed-loop arrivals need concurrency")
        return self


class WorkloadSpec(SpecwiseModel):
    arrival: ArrivalSpec
    prompt_len: LengthDist = LengthDist(kind="lognormal", mean=512, cv=0.8, high=8192)
    output_len: LengthDist = LengthDist(kind="lognormal", mean=256, cv=0.8, high=4096)
    classes: list[RequestClass] = Field(default_factory=lambda: [RequestClass()])
    num_requests: int | None = Field(None, ge=1, le=MAX_SIM_REQUESTS)
    duration_s: float | None = Field(None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False,
                                     description="open loop: arrivals within this window")
    trace_path: str | None = Field(None, description="trace replay: rows of timestamp, prompt_tokens, output_tokens")
    dataset_path: str | None = Field(
        None, description="(prompt_tokens, output_tokens) pairs sampled with replacement instead of the length dists"
    )


def check_request_budget(qps_list: list[float], duration_s: float | None, num_requests: int | None) -> None:
    """Refuse a sweep whose busiest open-loop point would draw more than :data:`MAX_SIM_REQUESTS` requests
    (``generate_requests`` draws ceil(duration x qps) of them up front, :func:`specwise.arrivals.requests_for_duration`)."""
    if num_requests is not None or duration_s is None or not qps_list:
        return
    busiest = max(qps_list)
    if math.ceil(duration_s * busiest) > MAX_SIM_REQUESTS:
        raise UserError(f"--duration {duration_s:g} s at {busiest:g} req/s draws more than {MAX_SIM_REQUESTS:,} "
                        f"requests per point, what half of this machine's memory holds (~20 KB each); shorten "
                        "--duration or give --num-requests")


@dataclass
class RequestArrays:
    """Pre-generated requests as parallel arrays (arrival inf = closed loop, assigned when a slot frees)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    class_index: np.ndarray
    classes: list[RequestClass]
    closed_loop_concurrency: int | None = None


def load_rows(path: str, need_timestamp: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(timestamps from 0 or None, prompt tokens, output tokens) of a JSONL/CSV trace, sorted by time."""
    names = ("prompt_tokens", "output_tokens") + (("timestamp",) if need_timestamp else ())
    values = np.array(numeric_columns(read_rows(path, "trace", formats=("jsonl", "csv")), path, "trace", names))
    values = values.reshape(-1, len(names))
    if values.shape[0] == 0:
        raise UserError(f"{path}: no rows; a trace is JSONL or CSV with {', '.join(names)}")
    if need_timestamp and values.shape[0] > MAX_SIM_REQUESTS:  # every row is replayed at every load point
        raise UserError(f"{path}: {values.shape[0]:,} rows; a replayed trace holds at most {MAX_SIM_REQUESTS:,} "
                        "requests on this machine (~20 KB each in half its memory): cut it into windows")
    for col, name in ((0, "prompt_tokens"), (1, "output_tokens")):
        bad = np.flatnonzero((values[:, col] < 0) | (values[:, col] > MAX_TOKENS))
        if bad.size:
            raise UserError(f"{path} row {bad[0] + 1}: {name} {values[bad[0], col]:g} is outside 0..{MAX_TOKENS}; "
                            "token counts are whole numbers of tokens")
    pt, ot = values[:, 0].astype(np.int64), values[:, 1].astype(np.int64)
    ts = values[:, 2] if need_timestamp else None
    if ts is None:
        return None, pt, ot
    order = np.argsort(ts, kind="stable")
    return ts[order] - ts[order][0], pt[order], ot[order]


def generate_requests(spec: WorkloadSpec, seed: int = 0) -> RequestArrays:
    """Draw arrivals, lengths and classes. The same seed gives the same requests (common random numbers)."""
    rng = np.random.default_rng(seed)
    a = spec.arrival
    concurrency = None
    if a.kind == "trace":
        if not spec.trace_path:
            raise UserError("trace arrivals need a trace file")
        arrival, prompt, output = load_rows(spec.trace_path, need_timestamp=True)
        assert arrival is not None
        n = arrival.size
        if a.qps is not None and n > 1 and arrival[-1] > 0:
            # replay the trace's shape at another mean rate: compress/stretch its timestamps
            arrival = arrival * ((n - 1) / arrival[-1]) / a.qps
    else:
        if a.kind == "closed" or spec.num_requests is not None:
            n = spec.num_requests or 1000
        elif spec.duration_s is not None:
            n = requests_for_duration(float(a.qps or 1.0), spec.duration_s)
        else:
            raise UserError("give --num-requests or --duration")
        if a.kind == "closed":
            concurrency = int(a.concurrency or 1)
            arrival = np.full(n, np.inf)
            arrival[: min(n, concurrency)] = 0.0
        else:
            # the schedule bench sends for the same seed and rate (specwise.arrivals); its n gamma draws
            # come first from rng, lengths and classes after
            arrival = open_loop_offsets(a.kind, float(a.qps or 1.0), n, rng, a.burstiness)
        if spec.dataset_path:
            _, pool_p, pool_o = load_rows(spec.dataset_path, need_timestamp=False)
            pick = rng.integers(0, pool_p.size, size=n)
            prompt, output = pool_p[pick], pool_o[pick]
        else:
            prompt = spec.prompt_len.sample(rng, n)
            output = spec.output_len.sample(rng, n)
    weights = np.array([c.weight for c in spec.classes], dtype=float)
    class_index = rng.choice(len(spec.classes), size=n, p=weights / weights.sum()) if len(spec.classes) > 1 \
        else np.zeros(n, dtype=np.int64)
    return RequestArrays(arrival_s=arrival.astype(float), prompt_tokens=prompt.astype(np.int64),
                         output_tokens=np.maximum(output.astype(np.int64), 1), class_index=class_index,
                         classes=list(spec.classes), closed_loop_concurrency=concurrency)

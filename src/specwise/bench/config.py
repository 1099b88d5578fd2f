"""``BenchConfig``: every input of a bench run, validated where it enters (the CLI, ``--config`` files, tests).

Bounds are part of the contract: a rate or count past them is a typo or a request for more memory
than a bench host has, and is refused with the flag in the message (exit 2; ``cli.options.build_config``
names it), never carried
into a schedule, an allocation or a statistic that would fail cells later. ``config.json`` of a run
records the validated object; ``--resume`` requires the same one.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from specwise.arrivals import MAX_RATE, MIN_RATE
from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.results import Role

__all__ = ["BENCH_OWNED_FIELDS", "BenchConfig", "MAX_CLIENT_WORKERS", "MAX_REQUESTS_PER_CELL", "MAX_TEMPERATURE",
           "ROLES"]

ROLES: tuple[Role, Role] = ("baseline", "speculative")
# Every request of a cell is planned up front (prompt, schedule); ~10 KB each with a long prompt, so
# 200,000 requests is ~2 GB: past that a cell is a memory problem, not a measurement.
MAX_REQUESTS_PER_CELL = 200_000
MAX_CLIENT_WORKERS = 256
MAX_TEMPERATURE = 2.0  # the OpenAI API's range; vLLM accepts more, but acceptance there is noise
MAX_SEED = 2**63 - 1

# Request fields the bench sets itself (per request or from its own options); --extra-body may not override them.
BENCH_OWNED_FIELDS = frozenset({"model", "messages", "prompt", "stream", "stream_options", "max_tokens",
                                "max_completion_tokens", "temperature", "seed", "n", "top_p", "top_k"})

class BenchConfig(SpecwiseModel):
    """Every input of a bench run (recorded in config.json; ``--resume`` requires the same)."""

    baseline_url: str | None = None
    speculative_url: str | None = None
    baseline_cmd: str | None = None
    speculative_cmd: str | None = None
    model: str | None = None
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = None
    qps: list[float] | None = Field(None, min_length=1, description="request rates; None = automatic sweep to "
                                    "saturation")
    sweep_start: float = Field(1.0, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    sweep_factor: float = Field(2.0, gt=1, le=1000, allow_inf_nan=False)
    sweep_max: float = Field(256.0, gt=0, le=MAX_RATE, allow_inf_nan=False)
    temperatures: list[float | None] = Field(default_factory=lambda: [0.0], min_length=1,
                                             description="None = the workload's temperature distribution")
    workload: str = "chat"
    workload_temperatures: dict[float, float] | None = None
    num_requests: int | None = Field(None, ge=1, le=MAX_REQUESTS_PER_CELL)
    duration_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    arrival: Literal["poisson", "constant", "gamma", "closed_loop"] = "poisson"
    burstiness: float = Field(1.0, ge=0.01, le=1000, allow_inf_nan=False,
                              description="gamma shape: 1 = Poisson, < 1 burstier (0.01: nearly all at once)")
    concurrency: int | None = Field(None, ge=1, le=MAX_REQUESTS_PER_CELL)
    repeats: int = Field(1, ge=1, le=1000)
    k: int | None = Field(None, ge=1, le=1024, description="draft length; else from the server's config or /metrics")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    max_tokens: int | None = Field(None, ge=1, le=10_000_000,
                                   description="forces every request's max_tokens (default: per prompt)")
    timeout_s: float = Field(600.0, gt=0, le=1e7, allow_inf_nan=False)
    error_budget: float = Field(0.2, ge=0, le=1, allow_inf_nan=False,
                                description="abort a cell when this share of its requests failed")
    gauge_interval_s: float = Field(1.0, gt=0, le=3600, allow_inf_nan=False)
    production_temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    ignore_eos: bool = False
    token_counting: Literal["auto", "usage", "token_ids", "logprobs", "text"] = "auto"
    request_token_ids: bool = False
    lossless: Literal["off", "quick", "full"] = "quick"
    startup_timeout_s: float = Field(1800.0, gt=0, le=1e7, allow_inf_nan=False)
    warmup_requests: int = Field(2, ge=0, le=10_000)
    client_workers: int | None = Field(None, ge=1, le=MAX_CLIENT_WORKERS,
                                       description="client processes streaming each cell (open-loop "
                                       "arrivals); None = auto from the peak offered chunk rate "
                                       "(specwise.bench.shards.default_client_workers)")
    like_for_like: bool = Field(False, description="also run the baseline with the speculative arm's other "
                                "engine settings forced (needs --baseline-cmd)")
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False,
                                description="top_p sent with every request (None: the server's "
                                "default); verification truncates the target to it, which changes acceptance")
    top_k: int | None = Field(None, ge=-1, le=10_000_000,
                              description="top_k sent with every request (None: the server's default)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="further sampling fields sent with every "
                                       "request, e.g. {\"min_p\": 0.05, \"repetition_penalty\": 1.1}")
    gpu: str | None = Field(None, description="catalog GPU of launched servers, for the plan their startup "
                            "memory is compared with")
    gpu_memory_gib: float | None = Field(None, gt=0, le=1e6, allow_inf_nan=False,
                                         description="total memory of a GPU not in the catalog, GiB")
    plan_file: str | None = Field(None, description="`specwise plan --json` output to compare startup memory "
                                  "with, instead of a plan derived from each command")

    @field_validator("qps")
    @classmethod
    def _rates(cls, v: list[float] | None) -> list[float] | None:
        for q in v or []:
            if not (math.isfinite(q) and MIN_RATE <= q <= MAX_RATE):
                raise ValueError(f"each rate must be a finite number from {MIN_RATE:g} to {MAX_RATE:g} req/s, "
                                 f"not {q!r}")
        return v

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, v: list[float | None]) -> list[float | None]:
        for t in v:
            if t is not None and not (math.isfinite(t) and 0 <= t <= MAX_TEMPERATURE):
                raise ValueError(f"each temperature must be in [0, {MAX_TEMPERATURE:g}] (or 'mix'), not {t!r}")
        return v

    @field_validator("workload_temperatures")
    @classmethod
    def _temp_weights(cls, v: dict[float, float] | None) -> dict[float, float] | None:
        for t, w in (v or {}).items():
            if not (math.isfinite(t) and 0 <= t <= MAX_TEMPERATURE):
                raise ValueError(f"temperature {t!r} must be in [0, {MAX_TEMPERATURE:g}]")
            if not (math.isfinite(w) and w > 0):
                raise ValueError(f"weight {w!r} of temperature {t:g} must be a finite number > 0")
        return v

    @field_validator("extra_body")
    @classmethod
    def _encodable(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(v, allow_nan=False).encode("utf-8")
            json.dumps(v, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError("must be a JSON object that encodes as UTF-8 JSON (no NaN/Infinity, no lone "
                             f"surrogates, not nested too deep): {type(exc).__name__}") from None
        return v

    def sampling_body(self) -> dict[str, Any]:
        """The request fields besides temperature that shape sampling (the same for both arms)."""
        body = dict(self.extra_body)
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.top_k is not None:
            body["top_k"] = self.top_k
        return body

    @model_validator(mode="after")
    def _check(self) -> BenchConfig:
        for role in ROLES:
            url, cmd = getattr(self, f"{role}_url"), getattr(self, f"{role}_cmd")
            if bool(url) == bool(cmd):
                raise UserError(f"give exactly one of --{role} URL or --{role}-cmd COMMAND")
        if self.num_requests is None and self.duration_s is None:
            self.num_requests = 100
        if self.arrival == "closed_loop" and self.concurrency is None:
            raise UserError("--arrival closed_loop needs --concurrency N")
        if self.duration_s is not None and self.num_requests is None:
            peak = max(self.qps) if self.qps else self.sweep_max
            if peak * self.duration_s > MAX_REQUESTS_PER_CELL:
                raise UserError(f"--duration {self.duration_s:g} s at {peak:g} req/s is more than "
                                f"{MAX_REQUESTS_PER_CELL:,} requests per cell; shorten --duration")
        if self.top_k is not None and self.top_k != -1 and self.top_k < 1:
            raise UserError(f"--top-k must be >= 1 (or -1 for all tokens), not {self.top_k}")
        owned = sorted(set(self.extra_body) & BENCH_OWNED_FIELDS)
        if owned:
            raise UserError(f"--extra-body may not set {', '.join(owned)}: the bench sets them per request "
                            "(use --temperatures, --max-tokens, --top-p, --top-k, --model, --api)")
        if self.like_for_like and not self.baseline_cmd:
            raise UserError("--like-for-like relaunches the baseline with forced settings: it needs --baseline-cmd")
        if (self.gpu or self.gpu_memory_gib or self.plan_file) and not self.launches:
            raise UserError("--gpu / --gpu-memory-gib / --plan compare the startup log of a server the bench "
                            "launches: give --baseline-cmd and/or --speculative-cmd")
        if self.gpu:
            from specwise.catalog.models import get_gpu

            self.gpu = get_gpu(self.gpu).name
        return self

    @property
    def launches(self) -> bool:
        return bool(self.baseline_cmd or self.speculative_cmd)


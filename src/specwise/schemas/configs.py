"""Run configurations: the typed inputs of the ``simulate`` and ``bench`` stages.

A config validates itself (bad values are one-line :class:`~specwise.errors.UserError` messages naming the
flag), is what ``--config FILE`` (YAML or JSON of the same model) loads and what ``--out`` writes back next to
the results, and is recorded in ``RunResult.inputs`` so that a run can be repeated exactly. The stages take
it as their interface: ``specwise.simulate.stage.run(SimulateConfig)``, ``specwise.bench.runner.run_bench``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel

ROLES = ("baseline", "speculative")


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
    qps: list[float] | None = Field(None, description="request rates; None = automatic sweep to saturation")
    sweep_start: float = 1.0
    sweep_factor: float = 2.0
    sweep_max: float = 256.0
    temperatures: list[float | None] = Field(default_factory=lambda: [0.0],
                                             description="None = the workload's temperature distribution")
    workload: str = "chat"
    workload_temperatures: dict[float, float] | None = None
    num_requests: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    arrival: Literal["poisson", "constant", "gamma", "closed_loop"] = "poisson"
    burstiness: float = Field(1.0, gt=0)
    concurrency: int | None = Field(None, ge=1)
    repeats: int = Field(1, ge=1)
    k: int | None = Field(None, ge=1, description="draft length; else from the server's config or /metrics")
    seed: int = 0
    max_tokens: int | None = Field(None, ge=1, description="forces every request's max_tokens (default: per prompt)")
    timeout_s: float = Field(600.0, gt=0)
    error_budget: float = Field(0.2, ge=0, le=1, description="abort a cell when this share of its requests failed")
    gauge_interval_s: float = Field(1.0, gt=0)
    production_temperature: float | None = Field(None, ge=0)
    ignore_eos: bool = False
    token_counting: Literal["auto", "usage", "token_ids", "logprobs", "text"] = "auto"
    request_token_ids: bool = False
    lossless: Literal["off", "quick", "full"] = "quick"
    startup_timeout_s: float = 1800.0
    warmup_requests: int = Field(2, ge=0)
    client_workers: int | None = Field(None, ge=1, description="client processes streaming each cell (open-loop "
                                       "arrivals); None = auto from the peak offered chunk rate "
                                       "(specwise.bench.shards.default_client_workers)")
    like_for_like: bool = Field(False, description="also run the baseline with the speculative arm's other "
                                "engine settings forced (needs --baseline-cmd)")
    top_p: float | None = Field(None, gt=0, le=1, description="top_p sent with every request (None: the server's "
                                "default); verification truncates the target to it, which changes acceptance")
    top_k: int | None = Field(None, description="top_k sent with every request (None: the server's default)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="further sampling fields sent with every "
                                       "request, e.g. {\"min_p\": 0.05, \"repetition_penalty\": 1.1}")
    gpu: str | None = Field(None, description="catalog GPU of launched servers, for the plan their startup "
                            "memory is compared with")
    gpu_memory_gib: float | None = Field(None, gt=0, description="total memory of a GPU not in the catalog, GiB")
    plan_file: str | None = Field(None, description="`specwise plan --json` output to compare startup memory "
                                  "with, instead of a plan derived from each command")

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


class SimulateConfig(SpecwiseModel):
    """Every input of a ``simulate`` run (``specwise simulate --config FILE`` reads this model)."""

    target: str | None = Field(None, description="target model; None = the demo deployment "
                               "(Llama-3.1-70B-Instruct with Llama-3.2-1B-Instruct on 4x H100)")
    draft: str | None = None
    method: str | None = Field(None, description="vLLM method; None = draft_model with a draft, else eagle3")
    gpu: str = "H100"
    tp: int | None = Field(None, ge=1)
    draft_tp: int = Field(1, ge=1)
    quantization: str | None = None
    vllm_version: str | None = None
    k: int | None = Field(None, description="num_speculative_tokens; None = 4 for draft models, 3 otherwise")
    acceptance_rates: list[float] | None = Field(None, description="unconditional per-position a_1..a_k "
                                                 "(vLLM's per-position metric meaning)")
    acceptance_length: float | None = Field(None, description="mean acceptance length, bonus token included")
    acceptance_profile: str | None = Field(None, description="AcceptanceProfile JSON path (specwise estimate)")
    heterogeneity: float | None = Field(None, ge=0)
    prompt_len: str | None = Field(None, description="N | uniform:LO:HI | normal:MEAN:CV | lognormal:MEAN:CV")
    output_len: str | None = None
    qps: list[float] | None = Field(None, description="open loop: request rates to sweep (req/s)")
    concurrency: list[int] | None = Field(None, description="closed loop: requests kept in flight")
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(1.0, gt=0)
    temperature_mix: dict[float, float] | None = Field(None, description="temperature -> weight of the traffic")
    trace: str | None = Field(None, description="JSONL/CSV trace (timestamp, prompt_tokens, output_tokens)")
    dataset: str | None = Field(None, description="JSONL/CSV of prompt_tokens, output_tokens pairs")
    duration_s: float | None = Field(None, gt=0)
    num_requests: int | None = Field(None, ge=1)
    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int = Field(8192, ge=1)
    kv_capacity_tokens: int | None = Field(None, ge=1)
    step_time_model: str | None = Field(None, description="StepTimeModel JSON path for the target")
    oracle: bool = True
    k_sweep: list[int] | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SimulateConfig:
        if self.k is not None and self.k < 1:
            raise UserError("--k must be >= 1 (k=0 is the baseline, which is always simulated)")
        if self.qps is not None and (not self.qps or any(q <= 0 for q in self.qps)):
            raise UserError("--qps values must be > 0")
        if self.concurrency is not None:
            if self.qps or self.trace:
                raise UserError("give either --concurrency (closed loop) or --qps/--trace (open loop)")
            if not self.concurrency or any(c < 1 for c in self.concurrency):
                raise UserError("--concurrency values must be >= 1")
        if self.k_sweep is not None and any(x < 1 for x in self.k_sweep):
            raise UserError("--k-sweep values must be >= 1")
        given = [x is not None for x in (self.acceptance_rates, self.acceptance_length, self.acceptance_profile)]
        if sum(given) > 1:
            raise UserError("give only one of --acceptance-rates, --acceptance-length, --acceptance-profile")
        a = self.acceptance_rates
        if a is not None:
            if any(not 0.0 <= x <= 1.0 for x in a):
                raise UserError("--acceptance-rates: each a_i must lie in [0, 1]")
            if any(b > x + 1e-9 for x, b in zip(a, a[1:])):
                raise UserError("--acceptance-rates are unconditional (vLLM per-position) rates and cannot rise "
                                "with position: a_(i+1) <= a_i")
        if self.temperature_mix is not None and any(w < 0 for w in self.temperature_mix.values()):
            raise UserError("--temperature-mix: weights must be >= 0")
        if self.vllm_version:
            from specwise.catalog.vllm_versions import parse_version

            try:
                parse_version(self.vllm_version)
            except ValueError:
                raise UserError(f"--vllm-version: expected a version like 0.33.0, got '{self.vllm_version}'") \
                    from None
        return self

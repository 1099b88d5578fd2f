"""Run results shared by measured (bench) and simulated (simulate) runs.

One schema for both, so every downstream consumer (decide, report) works on either: ``simulate`` and
``bench`` both return a :class:`RunResult` and ``--json`` prints it. Times are in seconds. Per-request
timestamps are relative to the request's send time unless named otherwise. Version-1 results (older
``bench --out`` run directories, ``simulate --out`` files) are read by :func:`specwise.schemas.run_io.load_run_result`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.configs import SimulateConfig
from specwise.schemas.findings import Finding
from specwise.schemas.servers import ServerInfo

LoadKind = Literal["qps", "concurrency"]


class _LoadAxis(SpecwiseModel):
    """Every cell and comparison says which load it ran at: open loop (req/s) or closed loop (in flight).

    ``qps`` stays for compatibility with version-1 results; ``load`` is the axis downstream code reads.
    """

    load_kind: LoadKind = Field("qps", description="qps: offered request rate (req/s); concurrency: closed "
                                "loop, requests kept in flight")
    load: float | None = Field(None, description="the load in load_kind's unit; null = unbounded / unknown")

    @model_validator(mode="after")
    def _fill_load(self):  # noqa: ANN202 - pydantic hook
        qps = getattr(self, "qps", None)
        if self.load is None and self.load_kind == "qps" and qps is not None:
            self.load = qps
        return self


# baseline_like_for_like: the baseline relaunched with the speculative arm's non-speculative engine settings
# forced (bench --like-for-like), measured next to the default baseline.
Role = Literal["baseline", "speculative", "baseline_like_for_like"]


class ServerSpecDecodeRequestMetrics(SpecwiseModel):
    """Per-request speculative metrics returned by the server (vLLM 0.29+ ``metrics.speculative_decoding``)."""

    mean_acceptance_length: float | None = None
    draft_acceptance_rate: float | None = None
    acceptance_histogram: list[int] | None = None
    num_spec_steps: int | None = None
    num_accepted_draft_tokens: int | None = None
    num_draft_tokens: int | None = None
    num_spec_tokens: int | None = None
    per_step_accepted: list[int] | None = Field(None, description="'detailed' mode only")
    per_step_drafted: list[int] | None = Field(None, description="'detailed' mode only")


class RequestRecord(SpecwiseModel):
    """One request as seen by the client (measured) or the engine (simulated)."""

    request_id: str
    role: Role
    qps: float | None = None
    temperature: float = 0.0
    category: str | None = None
    prompt_id: str | None = None
    repeat: int = 0
    scheduled_s: float = Field(0.0, description="arrival time in the phase's schedule, from phase start")
    sent_s: float | None = Field(None, description="when the request was sent, from phase start")
    prompt_tokens: int | None = None
    output_tokens: int = 0
    ttft_s: float | None = Field(None, description="send -> first chunk carrying generated output")
    e2e_s: float | None = Field(None, description="send -> last chunk carrying generated output")
    chunk_offsets_s: list[float] = Field(
        default_factory=list, description="arrival of each content chunk, seconds after send"
    )
    chunk_tokens: list[int] = Field(default_factory=list, description="output tokens carried by each chunk")
    arrival_stamps: Literal["kernel", "event_loop", "simulated"] | None = Field(
        None, description="where chunk arrival times come from: the kernel's receive time of each socket read "
        "(plain http on Linux), the event loop's time when it handed the read over (https), or the simulator's clock"
    )
    token_count_method: Literal["usage", "token_ids", "logprobs", "text", "engine"] = "engine"
    chunk_estimate_safe: bool = Field(
        True, description="False when chunks may merge engine steps (tokens/chunk is then not accepted/step)"
    )
    accepted_per_step: list[int] | None = Field(
        None, description="simulated runs: accepted draft tokens in each verify step (0..k)"
    )
    server_spec: ServerSpecDecodeRequestMetrics | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_kind: str | None = Field(None, description="why it failed: http_NNN, timeout, disconnected, "
                                   "truncated_stream, malformed_sse, malformed_stream, malformed_usage, "
                                   "malformed_metrics, stream_error, empty_response, cancelled, client_error, ...")
    error_detail: str | None = Field(None, description="the offending bytes of a malformed reply, truncated to "
                                     "200 bytes, for diagnosis")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_s(self) -> float | None:
        """(e2e - ttft) / (output_tokens - 1): per output token, excluding the first."""
        if self.e2e_s is None or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


class CellSummary(_LoadAxis):
    """Aggregates of one phase: QPS x temperature x endpoint role. Field names are stable (``--json``)."""

    role: Role
    source: Source
    qps: float | None
    temperature: float | None = None
    category: str | None = None
    duration_s: float = 0.0
    requests_ok: int = 0
    requests_failed: int = 0
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_p99_s: float | None = None
    tpot_p50_s: float | None = None
    tpot_p95_s: float | None = None
    tpot_p99_s: float | None = None
    itl_per_token_p50_s: float | None = None
    itl_per_token_p99_s: float | None = None
    itl_per_chunk_p50_s: float | None = None
    itl_per_chunk_p99_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None
    e2e_p99_s: float | None = None
    output_tokens_per_s: float | None = None
    requests_per_s: float | None = None
    mean_tokens_per_chunk: float | None = None
    acceptance_rate_metrics: float | None = Field(None, description="server /metrics delta: accepted/drafted")
    mean_acceptance_length_metrics: float | None = Field(None, description="server /metrics delta: 1 + accepted/drafts")
    per_position_acceptance_metrics: list[float] | None = None
    acceptance_rate_per_request_p10: float | None = None
    acceptance_rate_per_request_p50: float | None = None
    acceptance_rate_per_request_p90: float | None = None
    acceptance_length_per_request_p50: float | None = None
    acceptance_source_per_request: str | None = Field(
        None, description="'server' (per-request metrics) or 'chunks' (tokens per chunk estimate)"
    )
    mean_batch_size: float | None = None
    saturated: bool = False
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    # Measured runs (bench) add these; simulated runs leave the defaults.
    acceptance_semantics_metrics: str | None = Field(
        None, description="which definition acceptance_rate_metrics follows: v1_accepted_prefix, "
        "v0_all_positions (inflated vs V1), sglang; None when /metrics had no spec-decode counters"
    )
    metrics_note: str | None = Field(None, description="why /metrics numbers are missing or partial, if they are")
    kv_cache_usage_max: float | None = Field(None, description="max sampled KV-cache usage, 0-1 (server gauge)")
    num_requests_waiting_max: float | None = Field(None, description="max sampled waiting requests (server gauge)")
    repeats: int = Field(1, description="repeats pooled in this cell")
    token_count_method: str | None = Field(None, description="how tokens per chunk were counted (most requests)")
    chunk_estimate_safe_share: float | None = Field(
        None, description="share of requests whose chunks are single engine steps (chunk acceptance estimate valid)"
    )
    chunks_same_read_share: float | None = Field(
        None, description="share of inter-chunk gaps that are exactly 0 s: the chunk arrived in the same socket read "
        "as the one before it (server output bunched, or this client starved), so ITL and TPOT understate the step "
        "time for those chunks"
    )
    step_window_p10_s: float | None = Field(
        None, description="10th percentile over the cell's 1-s windows of the median inter-chunk gap in the window "
        "(the engine's step time when chunks are single steps); see step_window_spread"
    )
    step_window_p90_s: float | None = Field(None, description="90th percentile of the same per-window medians")
    step_windows: int = Field(0, description="1-s windows with enough chunk gaps to enter step_window_p10/p90")

    @property
    def step_window_spread(self) -> float | None:
        """step_window_p90 / step_window_p10: 1.0-1.1 when the step time held steady during the cell."""
        if self.step_window_p10_s and self.step_window_p90_s is not None:
            return self.step_window_p90_s / self.step_window_p10_s
        return None


class SpeedupCI(SpecwiseModel):
    """A speedup (baseline / speculative latency, > 1 means speculation is faster) with its CI."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None


class Comparison(_LoadAxis):
    """Baseline vs speculative at one QPS x temperature."""

    qps: float | None
    baseline_role: str = Field("baseline", description="which baseline: 'baseline' or 'baseline_like_for_like'")
    temperature: float | None = None
    speedup_tpot_p50: SpeedupCI
    speedup_tpot_p99: SpeedupCI
    speedup_e2e_p50: SpeedupCI
    speedup_e2e_p99: SpeedupCI
    speedup_ttft_p50: SpeedupCI | None = None
    throughput_ratio: float | None = None
    repeats: int = Field(1, description="with repeats > 1, value = median over repeats; CI pools all requests")
    per_repeat: dict[str, list[float | None]] = Field(default_factory=dict, description="speedup per repeat")


class Crossover(SpecwiseModel):
    """Where speculation stops paying: the first load at which the E2E P50 speedup falls through 1.

    Same definition for simulated and measured runs (``specwise.crossover``), so the two compare directly.
    """

    source: Source = Field(description="simulated (simulate) or measured (bench)")
    metric: Literal["speedup_e2e_p50"] = "speedup_e2e_p50"
    temperature: float | None = Field(None, description="the comparisons' temperature; None = workload mix")
    baseline_role: str = Field("baseline", description="which baseline the speedups are against")
    load: Literal["qps", "concurrency"] = Field("qps", description="unit of the loads: req/s or requests in flight")
    position: Literal["within", "below_range", "above_range", "no_data"] = Field(
        description="within: the speedup falls through 1 inside the loads run; below_range: slower already at "
        "the lowest load; above_range: not slower at any load run"
    )
    value: float | None = Field(None, description="load where the speedup crosses 1, linearly interpolated "
                                "between the two loads around it; null unless position=within")
    bracket_low: float | None = Field(None, description="highest load at or below the crossing whose speedup "
                                      "CI lies wholly above 1; null without CIs or when no load establishes it")
    bracket_high: float | None = Field(None, description="lowest load at or above the crossing whose speedup "
                                       "CI lies wholly below 1; null without CIs or when no load establishes it")
    batch_size: float | None = Field(None, description="simulated: mean running batch of the speculative "
                                     "server at the crossover (interpolated)")
    loads: list[float] = Field(default_factory=list, description="the loads run, ascending")
    speedups: list[float | None] = Field(default_factory=list, description="speedup_e2e_p50 at each load")
    notes: list[str] = Field(default_factory=list)


class AcceptanceBreakdown(SpecwiseModel):
    """Per-request acceptance of the speculative arm within one temperature bucket and category."""

    temperature: float | None
    category: str | None = Field(None, description="None = all categories")
    requests: int
    acceptance_rate_p10: float | None = None
    acceptance_rate_p50: float | None = None
    acceptance_rate_p90: float | None = None
    acceptance_length_p50: float | None = None
    source: str | None = Field(None, description="'server' (per-request metrics), 'chunks' or 'engine'")


class LosslessCheck(SpecwiseModel):
    """Do the two arms produce the same outputs? (greedy: identical text; sampled: same distribution)."""

    passed: bool | None = Field(None, description="None when the check could not run")
    greedy_prompts: int = 0
    greedy_mismatches: int = 0
    greedy_examples: list[str] = Field(default_factory=list)
    sampled_temperature: float | None = None
    sampled_prompts: int = 0
    samples_per_arm: int = 0
    worst_p_value: float | None = None
    worst_total_variation: float | None = None
    false_alarm_rate: float | None = Field(None, description="family-wise false-alarm rate of the sampled test")
    detail: str = ""


class DeploymentInputs(SpecwiseModel):
    """One simulated server: what runs where, and where its KV capacity and draft cost come from."""

    target: str
    target_catalog_id: str | None = None
    gpu: str | None = None
    tp: int | None = None
    quantization: str | None = None
    method: str | None = Field(None, description="speculative method; None for the baseline")
    draft: str | None = None
    draft_tp: int | None = None
    kv_capacity_tokens: int | None = None
    kv_capacity_source: str | None = Field(None, description="plan memory model, fallback estimate, or given")
    cost_ratio: float | None = Field(None, description="c at batch 1 (estimated, same step-time model)")
    cost_ratio_basis: str | None = None
    step_time_model: str | None = Field(None, description="path of a user StepTimeModel JSON, if one was given")
    calibration: str | None = Field(None, description="named calibration whose constants price this server "
                                    "(specwise catalog --calibrations); None = roofline or --step-time-model")
    engine_mode: str | None = Field(None, description="vLLM engine mode this server runs (v2_async, v1_sync, ...: "
                                    "catalog engine_modes of the version); None = unknown")


class StepTimeInputs(SpecwiseModel):
    """Simulated runs: the step-time constants every simulated step is priced with, and their calibration."""

    target: dict[str, Any] = Field(description="specwise.perf.steptime.StepTimeModel of the target (JSON)")
    draft_cost: dict[str, Any] = Field(default_factory=dict, description="DraftCost of the method (JSON)")
    calibration: str = Field(description="where the constants come from: the roofline from catalog specs, "
                             "or the user's --step-time-model file")


class TemperatureShare(SpecwiseModel):
    """One slice of the traffic's temperature mix."""

    temperature: float | None = Field(description="None = the workload's own distribution ('mix')")
    weight: float = 1.0
    category: str | None = None


class WorkloadInputs(SpecwiseModel):
    """The traffic of a run, in the terms both stages share (the stage's full spec is in ``detail``)."""

    name: str = Field(description="synthetic length distributions, trace/dataset file, or bench suite / file")
    arrival: str = Field(description="poisson | gamma | constant | closed_loop | trace")
    burstiness: float | None = None
    temperatures: list[TemperatureShare] = Field(default_factory=list)
    num_requests: int | None = Field(None, description="per cell")
    duration_s: float | None = Field(None, description="seconds of arrivals per cell")
    seed: int = 0
    detail: dict[str, Any] = Field(default_factory=dict, description="the stage's own workload spec (JSON)")


class RunInputs(SpecwiseModel):
    """Everything that produced a run, typed; ``simulate`` / ``bench`` hold the config to repeat it exactly."""

    deployment: dict[str, DeploymentInputs] = Field(default_factory=dict, description="simulated runs, per "
                                                    "role; measured runs describe their servers in `servers`")
    workload: WorkloadInputs | None = None
    acceptance: AcceptanceProfile | None = Field(None, description="simulated runs: the acceptance simulated, "
                                                 "with its source (assumed / estimated / measured)")
    k: int | None = Field(None, description="num_speculative_tokens of the speculative arm, if known")
    step_time: StepTimeInputs | None = None
    simulate: SimulateConfig | None = None
    bench: dict[str, Any] | None = Field(None, description="measured runs: the bench's BenchConfig as recorded "
                                         "(config.json of the run directory; --resume requires the same)")
    sweep_rates_run: list[float] | None = Field(None, description="bench --qps sweep: the rates it ran")
    legacy_config: dict[str, Any] | None = Field(None, description="a version-1 result's untyped config, "
                                                 "kept as recorded where it did not convert")

    @classmethod
    def for_bench(cls, cfg: Any, sweep_rates_run: list[float] | None = None) -> RunInputs:
        """The inputs of a measured run from its ``specwise.bench`` BenchConfig (a model or its JSON dict)."""
        config = cfg if isinstance(cfg, dict) else cfg.model_dump(mode="json")
        temps = []
        for t in config.get("temperatures") or [0.0]:
            mix = config.get("workload_temperatures") if t is None else None
            temps += ([TemperatureShare(temperature=float(tt), weight=w) for tt, w in mix.items()] if mix
                      else [TemperatureShare(temperature=t)])
        workload = WorkloadInputs(name=str(config.get("workload", "chat")),
                                  arrival=str(config.get("arrival", "poisson")), burstiness=config.get("burstiness"),
                                  temperatures=temps, num_requests=config.get("num_requests"),
                                  duration_s=config.get("duration_s"), seed=config.get("seed", 0))
        return cls(workload=workload, k=config.get("k"), bench=config, sweep_rates_run=sweep_rates_run)


class GuardRecommendation(SpecwiseModel):
    """The per-batch-size k schedule that keeps speculation from slowing the server down (simulated)."""

    num_speculative_tokens_per_batch_size: list[list[int]] = Field(
        description="vLLM key (from vllm_since on): [[lo, hi, k], ...] over the running batch size; k=0 turns "
        "speculation off"
    )
    vllm_since: str | None = Field(None, description="first vLLM version with the key (catalog version facts)")
    disable_by_batch_size: int | None = Field(
        None, description="V0/ArcticInference equivalent: first batch size where speculation should be off"
    )
    analytic_crossover_batch_size: int | None = Field(
        None, description="smallest batch where fixed k is slower than no speculation (closed-loop model, "
        "docs/reference/theory-and-calibration.md §8.3)"
    )
    mean_context_tokens: float
    speculative_config: dict = Field(default_factory=dict, description="--speculative-config JSON with the guard")
    min_speedup_fixed: float | None = None
    min_speedup_guard: float | None = None
    min_speedup_oracle: float | None = None
    supported_by_vllm_version: bool | None = Field(None, description="does the --vllm-version given have the "
                                                   "per-batch-size key (catalog version facts); None = not given")


class PolicyPoint(_LoadAxis):
    """One speculation policy at one load, against the baseline at that load (simulated)."""

    qps: float | None = None
    policy: Literal["fixed", "guard", "oracle"]
    k: int = Field(description="fixed: k; guard / oracle: the largest k they may pick")
    mean_k: float | None = Field(None, description="mean draft length per verify step actually used")
    e2e_p50_s: float | None = None
    e2e_p99_s: float | None = None
    tpot_p50_s: float | None = None
    output_tokens_per_s: float | None = None
    mean_batch_size: float | None = None
    mean_acceptance_length: float | None = None
    speedup_e2e_p50: float | None = Field(None, description="baseline E2E p50 / this policy's (> 1 faster)")
    speedup_tpot_p50: float | None = None
    saturated: bool = False


class SimulationBlock(SpecwiseModel):
    """What only a simulator has: other policies at the same loads, the guard, the analytic crossover."""

    method: str
    k: int
    policies: list[PolicyPoint] = Field(default_factory=list, description="fixed k, guard and oracle per load")
    k_sweep: list[PolicyPoint] = Field(default_factory=list, description="fixed k per (load, k), if asked")
    guard: GuardRecommendation | None = None
    analytic_crossover_batch_size: int | None = Field(None, description="closed-loop model: smallest batch "
                                                      "where fixed k is slower than no speculation")
    crossover_batch_size: float | None = Field(None, description="mean running batch of the speculative "
                                               "server at the simulated crossover (interpolated)")
    baseline_saturation_load: float | None = Field(None, description="first load where the baseline queue grows")


def legacy_finding(text: str) -> Finding:
    """A version-1 finding (a plain sentence) as a :class:`Finding` (code 'legacy').

    Its severity follows the two sentences version 1 rendered as blocking: a losslessness failure and engine
    settings that differ between the arms; every other version-1 finding was a warning.
    """
    blocking = text.startswith(("NOT LOSSLESS", "ENGINE SETTINGS DIFFER"))
    return Finding(code="legacy", severity="blocking" if blocking else "warning", message=text)


class RunResult(SpecwiseModel):
    """A whole A/B run, measured or simulated (schema version 2)."""

    model_config = ConfigDict(validate_assignment=True)

    schema_version: Literal[2] = 2
    source: Source
    tool_version: str
    inputs: RunInputs = Field(default_factory=RunInputs, description="the inputs that produced this result")
    servers: dict[str, ServerInfo] = Field(default_factory=dict, description="per role: what the server is")
    cells: list[CellSummary] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    crossovers: list[Crossover] = Field(default_factory=list, description="per temperature x baseline: the "
                                        "load where speculation stops being faster (from comparisons)")
    findings: list[Finding] = Field(default_factory=list)
    acceptance_breakdown: list[AcceptanceBreakdown] = Field(default_factory=list)
    lossless: LosslessCheck | None = None
    simulation: SimulationBlock | None = Field(None, description="simulated runs: guard, oracle, k sweep")
    complete: bool = Field(True, description="False when the run was interrupted (Ctrl-C) or stopped early")

    @model_validator(mode="before")
    @classmethod
    def _untyped_config(cls, data: Any) -> Any:
        # a producer still passing version 1's untyped `config` (a measured run's BenchConfig dump): typed here
        if isinstance(data, dict) and "config" in data and "inputs" not in data:
            data = dict(data)
            config = dict(data.pop("config") or {})
            sweep = config.pop("sweep_rates_run", None)
            data["inputs"] = (RunInputs.for_bench(config, sweep_rates_run=sweep) if data.get("source") == "measured"
                              else RunInputs(legacy_config=config))
        return data

    @field_validator("servers", mode="before")
    @classmethod
    def _role_from_key(cls, v: Any) -> Any:
        # the role is the key; a server described without it takes it from there
        if isinstance(v, dict):
            return {role: ({"role": role, **info} if isinstance(info, dict) and "role" not in info else info)
                    for role, info in v.items()}
        return v

    @field_validator("findings", mode="before")
    @classmethod
    def _plain_findings(cls, v: Any) -> Any:
        # a stage that still writes sentences gets them converted here, at the schema's boundary
        if isinstance(v, list):
            return [legacy_finding(f) if isinstance(f, str) else f for f in v]
        return v

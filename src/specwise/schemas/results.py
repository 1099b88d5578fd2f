"""Run results shared by measured (bench) and simulated (simulate) runs.

One schema for both, so every downstream consumer (decide, report) works on either. Times are in
seconds. Per-request timestamps are relative to the request's send time unless named otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.findings import Finding

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


class RunResult(SpecwiseModel):
    """A whole A/B run, measured or simulated."""

    schema_version: Literal[1] = 1
    source: Source
    tool_version: str
    config: dict = Field(default_factory=dict, description="the inputs that produced this result")
    servers: dict = Field(default_factory=dict, description="per role: version, spec config, engine settings")
    cells: list[CellSummary] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    crossovers: list[Crossover] = Field(default_factory=list, description="per temperature x baseline: the "
                                        "load where speculation stops being faster (from comparisons)")
    findings: list[Finding] = Field(default_factory=list, description="statements about the run, each with a "
                                    "stable code, a severity and the values it rests on")
    acceptance_breakdown: list[AcceptanceBreakdown] = Field(default_factory=list)
    lossless: LosslessCheck | None = None
    complete: bool = Field(True, description="False when the run was interrupted (Ctrl-C) or stopped early")

    @field_validator("findings", mode="before")
    @classmethod
    def _legacy_findings(cls, value: object) -> object:
        """Version-1 results hold findings as plain sentences: read each as a finding with code 'legacy'
        (blocking where the sentence opened with the two warnings version 1 printed in red)."""
        if not isinstance(value, list):
            return value
        return [_legacy_finding(v) if isinstance(v, str) else v for v in value]


_LEGACY_BLOCKING = ("NOT LOSSLESS", "ENGINE SETTINGS DIFFER")


def _legacy_finding(text: str) -> Finding:
    blocking = text.startswith(_LEGACY_BLOCKING)
    return Finding(code="legacy", severity="blocking" if blocking else "warning", message=text)

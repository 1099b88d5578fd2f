"""What ``specwise monitor`` reads from one endpoint over one window, and the thresholds it judges it by.

One :class:`EndpointReading` per endpoint per poll; ``--once --json`` prints a :class:`MonitorReport` and
``--record FILE`` appends one reading per line (JSONL), which ``specwise report`` can plot as a time series.
Every figure is *measured* from the server's ``/metrics`` over the window; thresholds say where they come from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specwise.schemas.base import SpecwiseModel

HealthStateName = Literal[
    "healthy",  # acceptance at or above the healthy line, load under the crossover
    "break_even",  # acceptance between the net-negative and the healthy lines: speculation buys little
    "net_negative",  # acceptance below the net-negative line: speculation makes decoding slower
    "over_crossover",  # running requests or request rate above the crossover, whatever the acceptance
    "idle",  # the server answered but nothing was drafted in the window
    "no_spec",  # the server exposes no speculative-decoding metrics (speculation off or stats disabled)
    "down",  # /metrics could not be read
    "warming_up",  # fewer than two scrapes: no window yet
]

# Worst first: the order the one-line summary of several endpoints uses.
STATE_SEVERITY: dict[str, int] = {
    "down": 0, "net_negative": 1, "over_crossover": 2, "break_even": 3, "no_spec": 4, "idle": 5, "warming_up": 6,
    "healthy": 7,
}


class Thresholds(SpecwiseModel):
    """The lines the health state is judged against (acceptance in vLLM V1's definition: accepted / drafted)."""

    healthy_acceptance: float
    break_even_acceptance: float
    net_negative_acceptance: float
    source: Literal["decision", "rule_of_thumb", "flags"] = Field(
        description="decision: this pair's numbers from `specwise decide`; rule_of_thumb: the generic 0.65 / 0.5 "
        "lines (not specific to this deployment); flags: given on the command line")
    decision_path: str | None = None
    k: int | None = None
    expected_acceptance: float | None = None
    baseline_acceptance: float | None = Field(None, description="recorded reference for the >5-point drop rule")
    crossover_batch_size: float | None = Field(None, description="running requests above which speculation costs")
    crossover_qps: float | None = Field(None, description="request rate above which speculation costs")
    crossover_source: str | None = None
    slo_tpot_p99_s: float | None = None
    slo_ttft_p99_s: float | None = None
    notes: list[str] = Field(default_factory=list)


class LatencyQuantiles(SpecwiseModel):
    """Quantiles of one latency histogram over the window (bucket deltas, Prometheus interpolation)."""

    metric: str = Field(description="the exposed histogram it came from")
    count: float = Field(description="observations in the window")
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    mean_s: float | None = None


class Health(SpecwiseModel):
    state: HealthStateName
    acceptance_state: HealthStateName | None = Field(
        None, description="the state acceptance alone gives (healthy / break_even / net_negative), also when the "
        "load state over_crossover takes precedence")
    since: float = Field(description="unix time this state began (as seen by this monitor)")
    held_s: float = Field(description="how long the state has held")
    reasons: list[str] = Field(default_factory=list)


class EndpointReading(SpecwiseModel):
    """One endpoint over one window. Rates are per second of wall-clock between the two scrapes."""

    url: str
    t: float = Field(description="unix time of the newest scrape")
    ok: bool
    error: str | None = None
    flavor: str | None = Field(None, description="metric family: vllm_v1, vllm_v1_083, vllm_v0, sglang, ...")
    model_names: list[str] = Field(default_factory=list)
    engines: list[str] = Field(default_factory=list, description="`engine` label values (data-parallel ranks)")
    window_s: float = Field(0.0, description="seconds actually covered by the counter deltas")
    scrapes_in_window: int = 0
    acceptance_rate: float | None = Field(None, description="accepted / drafted tokens in the window (V1 meaning)")
    acceptance_semantics: str | None = None
    mean_acceptance_length: float | None = Field(None, description="1 + accepted / drafts (bonus token included)")
    per_position: list[float] | None = Field(None, description="accepted at position i / drafts, i = 0..k-1")
    k: int | None = None
    drafted_tokens_per_s: float | None = None
    accepted_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    requests_per_s: float | None = Field(None, description="finished requests per second (request_success)")
    running: float | None = Field(None, description="running requests, mean over the window's scrapes")
    running_now: float | None = None
    waiting: float | None = Field(None, description="waiting requests at the newest scrape")
    waiting_slope_per_s: float | None = None
    kv_cache_usage: float | None = Field(None, description="0-1, at the newest scrape")
    ttft: LatencyQuantiles | None = None
    tpot: LatencyQuantiles | None = None
    itl: LatencyQuantiles | None = None
    e2e: LatencyQuantiles | None = None
    health: Health
    counter_reset: bool = False
    restarts_seen: int = 0
    missing: list[str] = Field(default_factory=list, description="metrics the monitor looked for and did not find")
    notes: list[str] = Field(default_factory=list)
    source: Literal["measured"] = "measured"


class MonitorReport(SpecwiseModel):
    """``specwise monitor --once --json``: every endpoint's reading and the thresholds used."""

    schema_version: Literal[1] = 1
    tool_version: str
    window_s: float
    thresholds: Thresholds
    readings: list[EndpointReading]
    worst_state: HealthStateName

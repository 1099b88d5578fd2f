"""The decision: verdict, rule table, how firm it is, the config to ship and the thresholds to monitor.

``specwise decide`` produces it; ``specwise report`` renders it; ``specwise monitor`` reads its
``monitor`` block (break-even acceptance, crossover) so that alerts and the live view use this pair's
numbers rather than the seed's rules of thumb.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.findings import Finding
from specwise.schemas.workload import WorkloadProfile

Verdict = Literal["ENABLE", "ENABLE_WITH_GUARD", "BORDERLINE", "DISABLE", "DOES_NOT_FIT"]

# How firm the answer is, weakest first. A verdict's firmness is the strongest level among the evidence the
# deciding rules used.
Firmness = Literal[
    "assumed",  # only defaults and the workload profile
    "estimated",  # plan / estimate (acceptance measured offline on the user's prompts)
    "simulated_roofline",  # simulate with the roofline step-time defaults (uncalibrated)
    "simulated_calibrated",  # simulate with a step-time calibration measured on this GPU and vLLM version
    "measured",  # bench at the production load and temperature
]
FIRMNESS_ORDER: tuple[str, ...] = (
    "assumed", "estimated", "simulated_roofline", "simulated_calibrated", "measured",
)


class EvidenceRef(SpecwiseModel):
    """One input the decision read."""

    kind: Literal["workload", "plan", "acceptance_profile", "run_result", "decision"]
    path: str | None = Field(None, description="file or run directory; None when decide produced it itself")
    source: Source
    firmness: Firmness
    description: str = ""
    command: str | None = Field(None, description="the specwise command that produced it, when known")
    versions: dict[str, str] = Field(default_factory=dict, description="tool / vLLM / GPU versions behind it")


class ShipConfig(SpecwiseModel):
    """What to launch: the plan's emitter for the user's vLLM version, k and guard filled in."""

    vllm_version: str
    speculative: bool = Field(description="False: ship the baseline (no --speculative-config)")
    vllm_command: str
    speculative_config: dict[str, Any] | None = None
    guard_schedule: list[list[int]] | None = Field(
        None, description="num_speculative_tokens_per_batch_size [[lo, hi, k], ...]; None = fixed k")
    guard_source: Source | None = Field(None, description="measured only when a bench arm ran with this guard")
    guard_tax_note: str | None = None
    sglang_command: str | None = None
    notes: list[str] = Field(default_factory=list)


class MonitorThresholds(SpecwiseModel):
    """Thresholds that would flip the verdict in production (read by ``specwise monitor``)."""

    k: int | None = None
    break_even_acceptance: float | None = Field(
        None, description="vLLM definition (sum of per-position acceptance / k): below it speculation is slower")
    break_even_acceptance_length: float | None = Field(None, description="the same as mean acceptance length")
    healthy_acceptance: float | None = Field(
        None, description="acceptance above which speculation clearly pays (break-even plus a margin)")
    net_negative_acceptance: float | None = Field(
        None, description="acceptance below which speculation clearly costs (alert)")
    thresholds_source: Literal["decision", "rule_of_thumb"] = "decision"
    expected_acceptance: float | None = Field(None, description="what the evidence says production should see")
    baseline_acceptance: float | None = Field(
        None, description="recorded reference for the >5-point drop rule (quantisation / upgrades)")
    crossover_batch_size: float | None = Field(None, description="running requests above which it stops paying")
    crossover_qps: float | None = Field(None, description="request rate above which it stops paying")
    crossover_source: Source | None = None
    slo_metric: str | None = None
    slo_p99_target_s: float | None = None
    slo_p50_target_s: float | None = None


class Decision(SpecwiseModel):
    """The verdict and everything behind it."""

    schema_version: Literal[1] = 1
    tool_version: str
    created_at: str = Field(description="ISO 8601 UTC")
    verdict: Verdict
    headline: str = Field(description="the verdict in one line, with the deciding reason")
    firmness: Firmness
    firmness_note: str = ""
    rules: list[Finding] = Field(default_factory=list, description="the rule table, in evaluation order")
    config: ShipConfig | None = None
    monitor: MonitorThresholds = MonitorThresholds()
    next_steps: list[str] = Field(default_factory=list, description="e.g. the exact specwise bench command")
    evidence: list[EvidenceRef] = Field(default_factory=list)
    workload: WorkloadProfile | None = None

"""What one server under test is: its identity, engine settings and startup memory against its plan.

``RunResult.servers`` holds one :class:`ServerInfo` per role. Measured runs (``bench``) fill it by probing
and launching servers (``specwise.bench.servers``); simulated runs describe the simulated engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from specwise.schemas.base import SpecwiseModel
from specwise.schemas.plan import CAPACITY_TOLERANCE, LogComparison, PlanRequest, StartupLogFacts


class ServeCommand(SpecwiseModel):
    """What a ``vllm serve`` / SGLang launch command says about the server."""

    argv: list[str]
    url: str
    model: str | None = None
    speculative: dict[str, Any] | None = None
    settings: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


class MemoryCheck(SpecwiseModel):
    """One launched server's startup memory against its plan (stored in ServerInfo.memory_check)."""

    compared: bool = Field(description="False: not compared, `reason` says why")
    reason: str | None = Field(None, description="one line: why no comparison was made")
    plan_source: Literal["command", "plan_file"] | None = Field(
        None, description="command: derived from the server's own command line; plan_file: --plan PLAN.json")
    budget: Literal["baseline", "speculative"] | None = Field(None, description="which budget of the plan")
    plan_request: PlanRequest | None = Field(None, description="the plan's inputs")
    assumptions: list[str] = Field(default_factory=list,
                                   description="where inputs came from, defaults the plan assumed, mismatches")
    startup_log: StartupLogFacts | None = None
    comparison: list[LogComparison] = Field(default_factory=list,
                                            description="predicted (estimated) vs logged (measured) per quantity")
    tolerance: float = Field(CAPACITY_TOLERANCE, description="relative error allowed on capacity rows")
    deviations: list[str] = Field(default_factory=list,
                                  description="capacity rows (weights, KV memory, KV tokens) beyond the tolerance")


class ServerInfo(SpecwiseModel):
    """What one arm's server is (recorded in the run directory and RunResult.servers)."""

    role: str
    url: str = Field("", description="endpoint; empty for a simulated engine")
    launched: bool = False
    command: str | None = None
    version: str | None = None
    model: str | None = None
    engine_generation: str | None = Field(None, description="V0 / V1 (vLLM), sglang, or simulated")
    metrics_flavor: str | None = None
    speculative_config: dict[str, Any] | None = None
    spec_method: str | None = None
    k: int | None = None
    rejection_sample_method: str | None = None
    synthetic_acceptance: bool = False
    settings: dict[str, str] = Field(default_factory=dict)
    startup_log: str | None = Field(None, description="path of the kept startup log")
    memory_check: MemoryCheck | None = Field(
        None, description="launched servers: startup-log memory vs the plan for the command (or --plan)")
    notes: list[str] = Field(default_factory=list)

    def apply_speculative(self, spec: dict[str, Any] | None) -> None:
        if not spec:
            return
        self.speculative_config = spec
        self.spec_method = str(spec.get("method")) if spec.get("method") else ("draft_model" if spec.get("model")
                                                                                else None)
        k = spec.get("num_speculative_tokens")
        self.k = int(k) if isinstance(k, (int, float, str)) and str(k).isdigit() else self.k
        rsm = spec.get("rejection_sample_method") or spec.get("acceptance_method")
        self.rejection_sample_method = str(rsm) if rsm else self.rejection_sample_method
        self.synthetic_acceptance = self.rejection_sample_method == "synthetic"

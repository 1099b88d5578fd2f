"""The workload profile: what a deployment serves, at what load, under which SLO (the input of decide).

A YAML or JSON file of this model (``examples/workload-profile.yaml`` is annotated) describes the traffic
mix as categories (share, temperature, top_p), prompt and output lengths, typical and peak load, the SLO
that matters and the deployment. decide, report and monitor read it; plan and simulate can be driven by it.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from specwise.schemas.base import SpecwiseModel

SpecMethod = Literal["draft_model", "ngram", "eagle", "eagle3", "mtp"]


class TrafficCategory(SpecwiseModel):
    """One slice of the traffic: a task category served at one sampling setting."""

    name: str = Field(min_length=1, max_length=100, description="e.g. summarisation, chat, json_extraction")
    share: float = Field(gt=0, le=1, description="fraction of requests (shares are normalised to sum to 1)")
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    prompt_tokens_mean: float | None = Field(None, gt=0, le=10_000_000, description="overrides the profile's")
    output_tokens_mean: float | None = Field(None, gt=0, le=10_000_000, description="overrides the profile's")


class LengthDistribution(SpecwiseModel):
    """Token lengths: a mean and a spread (log-normal with this coefficient of variation)."""

    mean: float = Field(gt=0, le=10_000_000)
    cv: float = Field(0.5, ge=0, le=10, description="standard deviation / mean")
    max: int | None = Field(None, gt=0)


class LoadSpec(SpecwiseModel):
    """The load the deployment runs at: open loop (req/s) or closed loop (requests in flight)."""

    kind: Literal["qps", "concurrency"] = "qps"
    typical: float = Field(gt=0, le=1_000_000)
    peak: float = Field(gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _peak_at_least_typical(self) -> LoadSpec:
        if self.peak < self.typical:
            raise ValueError(f"load.peak ({self.peak:g}) is below load.typical ({self.typical:g})")
        return self


class SLO(SpecwiseModel):
    """The latency or throughput target that matters; P50/P99 targets in seconds (tokens/s for throughput)."""

    metric: Literal["ttft", "tpot", "e2e", "throughput"] = "e2e"
    p50_target: float | None = Field(None, gt=0)
    p99_target: float | None = Field(None, gt=0)


class DeploymentSpec(SpecwiseModel):
    """The deployment: models, speculation method, hardware, parallelism, quantisation, vLLM version."""

    target: str = Field(min_length=1)
    draft: str | None = Field(None, description="draft model (method draft_model, eagle, eagle3 heads by name)")
    method: SpecMethod = "draft_model"
    k: int = Field(4, ge=1, le=32, description="num_speculative_tokens")
    gpu: str = "H100"
    gpus: int = Field(1, ge=1, le=64)
    tp: int | None = Field(None, ge=1, le=64)
    target_quant: str | None = None
    draft_quant: str | None = None
    vllm_version: str = "0.33.0"
    max_model_len: int | None = Field(None, gt=0, le=10_000_000)
    prompt_lookup_min: int | None = Field(None, ge=1)
    prompt_lookup_max: int | None = Field(None, ge=1)


class WorkloadProfile(SpecwiseModel):
    """What decide needs to know about the traffic besides the evidence."""

    name: str = "workload"
    categories: list[TrafficCategory] = Field(min_length=1)
    prompt_tokens: LengthDistribution = LengthDistribution(mean=355, cv=0.8)
    output_tokens: LengthDistribution = LengthDistribution(mean=728, cv=0.6)
    load: LoadSpec
    slo: SLO = SLO()
    deployment: DeploymentSpec

    @field_validator("categories")
    @classmethod
    def _unique_names(cls, v: list[TrafficCategory]) -> list[TrafficCategory]:
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError("category names must be unique")
        return v

    def normalised_shares(self) -> dict[str, float]:
        total = math.fsum(c.share for c in self.categories)
        return {c.name: c.share / total for c in self.categories}

    def median_temperature(self) -> float:
        """Share-weighted median temperature of the traffic."""
        shares = self.normalised_shares()
        acc = 0.0
        for c in sorted(self.categories, key=lambda c: c.temperature):
            acc += shares[c.name]
            if acc >= 0.5 - 1e-12:
                return c.temperature
        return self.categories[-1].temperature

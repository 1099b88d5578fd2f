"""Acceptance profiles: how many draft tokens a target accepts, per position, class and temperature.

Conventions (match vLLM V1, see ``vllm/v1/spec_decode/metrics.py``):

* ``conditional[i]`` = alpha_{i+1} = P(draft position i accepted | positions < i accepted), i = 0..k-1.
* ``unconditional[i]`` = a_i = prod_{j<=i} alpha_{j+1}: the fraction of verify steps whose i-th draft
  token was accepted. This is vLLM's per-position metric
  ``num_accepted_tokens_per_pos[i] / num_drafts`` and its ``synthetic_acceptance_rates``.
* mean acceptance length E[L(k)] = 1 + sum_i a_i (includes the bonus token).
* acceptance rate = sum_i a_i / k (accepted / drafted, vLLM's "Avg Draft acceptance rate").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.limits import MAX_K


def unconditional_from_conditional(conditional: list[float]) -> list[float]:
    out: list[float] = []
    running = 1.0
    for alpha in conditional:
        running *= alpha
        out.append(running)
    return out


def check_unconditional_rates(rates: list[float], what: str = "acceptance rates") -> None:
    """vLLM's per-position rates a_1..a_k lie in [0, 1] and cannot rise with position (UserError otherwise)."""
    from specwise.errors import UserError

    if any(not 0.0 <= x <= 1.0 for x in rates):
        raise UserError(f"{what}: each a_i must lie in [0, 1]")
    if any(b > x + 1e-9 for x, b in zip(rates, rates[1:])):
        raise UserError(f"{what} are unconditional (vLLM per-position) rates and cannot rise with position: "
                        "a_(i+1) <= a_i")


def conditional_from_unconditional(unconditional: list[float]) -> list[float]:
    out: list[float] = []
    previous = 1.0
    for a in unconditional:
        out.append(a / previous if previous > 0 else 0.0)
        previous = a
    return out


def mean_acceptance_length(conditional: list[float], k: int) -> float:
    """E[L(k)] = 1 + sum_{i<k} prod_{j<=i} alpha_j; positions beyond the profile repeat its last alpha."""
    if k <= 0:
        return 1.0
    alphas = list(conditional) or [0.0]
    while len(alphas) < k:
        alphas.append(alphas[-1])
    return 1.0 + sum(unconditional_from_conditional(alphas[:k]))


class AcceptanceClass(SpecwiseModel):
    """Acceptance of one request class (task category x temperature)."""

    category: str = "all"
    temperature: float = Field(0.0, ge=0.0, le=2.0, allow_inf_nan=False)  # as schemas.limits.Temperature
    conditional: list[float] = Field(max_length=MAX_K,
                                     description="alpha_1..alpha_K, conditional per-position acceptance")
    # Per-request heterogeneity: requests draw a multiplier on the log-odds of every alpha.
    # 0 means every request shares the class's alphas.
    heterogeneity: float = Field(0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                                 description="std-dev of per-request log-odds shift")
    # n-gram / suffix "match or nothing": with probability 1 - match_probability a step proposes
    # nothing (vLLM then schedules no draft for that request in that step).
    match_probability: float = Field(1.0, ge=0.0, le=1.0)
    rate_p10: float | None = None
    rate_p50: float | None = None
    rate_p90: float | None = None
    num_requests: int | None = None

    @field_validator("conditional")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("conditional acceptance needs at least one position")
        for a in v:
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"acceptance probabilities must lie in [0, 1], got {a}")
        return v

    @property
    def unconditional(self) -> list[float]:
        return unconditional_from_conditional(self.conditional)

    def mean_acceptance_length(self, k: int) -> float:
        return 1.0 + self.match_probability * (mean_acceptance_length(self.conditional, k) - 1.0)

    def acceptance_rate(self, k: int) -> float:
        """Accepted / drafted over steps that drafted (vLLM's definition)."""
        return (mean_acceptance_length(self.conditional, k) - 1.0) / k if k else 0.0


class AcceptanceProfile(SpecwiseModel):
    """Acceptance of one draft/target pair (or method) over request classes."""

    schema_version: Literal[1] = 1
    target: str | None = None
    draft: str | None = None
    method: str = Field("draft_model", description="vLLM speculative method: draft_model, ngram, eagle, eagle3, mtp")
    verification: Literal["lossless", "argmax_draft"] = Field(
        "lossless",
        description="lossless: sum_x min(p,q) (draft probabilities used); argmax_draft: p(argmax q) "
        "(vLLM V1 default draft_sample_method=greedy)",
    )
    source: Source = Source.assumed
    classes: list[AcceptanceClass] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)

    def lookup(self, category: str | None, temperature: float) -> AcceptanceClass:
        """The class for ``category`` nearest in temperature (falls back to category 'all')."""
        candidates = [c for c in self.classes if c.category == category] or [
            c for c in self.classes if c.category == "all"
        ] or list(self.classes)
        return min(candidates, key=lambda c: abs(c.temperature - temperature))

"""One finding shape for every stage: bench and simulate findings, decide's rule table, monitor states.

A finding is a statement about the evidence with a stable machine code, a severity, the values it rests on
and, for decide's rules, the threshold, the observed value, where that value came from and what it means for
the deployment. Renderers colour by ``severity`` and ``status``, never by parsing ``message``.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from specwise.schemas.base import Source, SpecwiseModel

Severity = Literal["info", "warning", "blocking"]
# pass / fail / unknown: a rule evaluated against evidence (unknown = the evidence needed is missing);
# None: a plain observation (most bench and simulate findings).
RuleStatus = Literal["pass", "fail", "unknown"]
EvidenceValue = Union[float, int, str, bool, None, list[float], list[int], list[str]]


class Finding(SpecwiseModel):
    """A statement about a run or a decision, with the values it rests on."""

    code: str = Field(description="stable snake_case identifier, e.g. 'not_lossless', 'acceptance_below_break_even'")
    severity: Severity = "info"
    message: str = Field(description="one human sentence, self-contained")
    rule: str | None = Field(None, description="decide: the rule's human name (rule table column)")
    status: RuleStatus | None = Field(None, description="decide: pass / fail / unknown; None for observations")
    threshold: EvidenceValue = Field(None, description="the value the observation is compared with")
    observed: EvidenceValue = Field(None, description="the observed value the finding rests on")
    unit: str | None = None
    source: Source | None = Field(None, description="where the observed value comes from")
    meaning: str | None = Field(None, description="what it means for this deployment / what to do")
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict, description="other values it rests on")

    def __str__(self) -> str:
        return self.message

    def __contains__(self, text: str) -> bool:
        """``"word" in finding`` searches the message, as it did when findings were plain sentences."""
        return text in self.message

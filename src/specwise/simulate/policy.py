"""Speculation guard policies: how many tokens to draft in a step, given the load.

* ``off``: no speculation (the baseline).
* ``fixed``: always k (vLLM ``num_speculative_tokens``).
* ``schedule``: vLLM 0.24+ ``num_speculative_tokens_per_batch_size`` = [[lo, hi, k], ...]; the batch is
  the number of running requests; k = 0 turns speculation off for that range (docs/reference/vllm-speculative-decoding.md §1.7).
  Batch sizes outside every range use the largest range's k.
* ``disable_by_batch_size``: V0/ArcticInference semantics: speculation off when the number of enqueued
  requests (running + waiting) reaches the threshold (vLLM V1 never honoured it, §1.7).
* ``oracle``: per step, the k in 0..k that maximises expected emitted tokens / step time (SmartSpec-style
  goodput argmax, docs/reference/theory-and-calibration.md §8.5); the upper bound a batch-size guard can reach.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from specwise.schemas.base import SpecwiseModel


class SpecPolicy(SpecwiseModel):
    kind: Literal["off", "fixed", "schedule", "disable_by_batch_size", "oracle"] = "fixed"
    k: int = Field(3, ge=0, description="fixed/disable_by_batch_size: tokens drafted; oracle: the largest k")
    schedule: list[tuple[int, int, int]] | None = Field(
        None, description="num_speculative_tokens_per_batch_size: [[lo, hi, k], ...] (inclusive)"
    )
    disable_by_batch_size: int | None = Field(None, ge=2)

    @model_validator(mode="after")
    def _check(self) -> SpecPolicy:
        if self.kind == "schedule":
            if not self.schedule:
                raise ValueError("schedule policy needs [[lo, hi, k], ...]")
            for lo, hi, k in self.schedule:
                if lo < 1 or hi < lo or k < 0:
                    raise ValueError(f"bad schedule range [{lo}, {hi}, {k}]")
        if self.kind == "disable_by_batch_size" and self.disable_by_batch_size is None:
            raise ValueError("disable_by_batch_size policy needs the threshold")
        return self

    @property
    def max_k(self) -> int:
        if self.kind == "off":
            return 0
        if self.kind == "schedule":
            return max(k for _, _, k in self.schedule or [(1, 1, 0)])
        return self.k

    def k_for(self, running: int, waiting: int = 0) -> int:
        """k for a step with ``running`` scheduled requests (oracle: the upper bound, chosen by the engine)."""
        if self.kind == "off":
            return 0
        if self.kind == "schedule":
            sched = self.schedule or []
            for lo, hi, k in sched:
                if lo <= running <= hi:
                    return k
            return max(sched, key=lambda r: r[1])[2] if running > 0 else 0
        if self.kind == "disable_by_batch_size":
            return 0 if running + waiting >= int(self.disable_by_batch_size or 0) else self.k
        return self.k

    def describe(self) -> str:
        if self.kind == "off":
            return "no speculation"
        if self.kind == "fixed":
            return f"fixed k={self.k}"
        if self.kind == "schedule":
            return "num_speculative_tokens_per_batch_size=" + str([list(r) for r in self.schedule or []])
        if self.kind == "disable_by_batch_size":
            return f"k={self.k}, disable_by_batch_size={self.disable_by_batch_size}"
        return f"oracle (best k <= {self.k} per step)"

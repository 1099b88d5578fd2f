"""Break-even acceptance for one target/proposer pair at one running batch size, and the guard tax.

Speculation pays when the tokens one verify step emits outweigh what the step costs more than a plain
decode step (theory-and-calibration.md §8.3):

    S(B, k) = E[L(k)] * T_base(B) / T_SD(B, k)        break-even: S = 1  ->  E[L]* = T_SD(B, k) / T_base(B)

``T_base`` and ``T_SD`` come from :mod:`specwise.perf` (the same step-time model and draft cost that plan,
estimate and simulate use), so the break-even rises with the batch the load implies: verifying k+1 tokens per
sequence stops being free once the GEMMs turn compute-bound. In vLLM's terms the break-even acceptance *rate*
(accepted / drafted, Σ per-position / k) is (E[L]* − 1) / k; E[L]* itself is the break-even mean acceptance
length. At batch 1 with a free verify this reduces to Leviathan's E[L]* = 1 + k·c (Thm 3.8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specwise.perf.steptime import DraftCost, StepTimeModel, baseline_step_time, speculative_step_time

# The seed's rules of thumb (shown beside the pair's own break-even, never used to decide).
RULE_OF_THUMB_NET_NEGATIVE = 0.5
RULE_OF_THUMB_HEALTHY = 0.65

# vLLM issue #49548 (Qwen3.5-122B, MTP k=2, schedule [[1,4,2],[5,512,0]]): a K=0 band still cost +6.6 % TPOT at
# 2 concurrent and +21.6 % at 189; the schedule's CUDA-graph downgrade cost 14 % single-stream.
GUARD_TAX_LOW = (2.0, 0.066)
GUARD_TAX_HIGH = (189.0, 0.216)
GUARD_CUDAGRAPH_DOWNGRADE = 0.14


@dataclass(frozen=True)
class BreakEven:
    """Break-even of one pair at one batch size (estimated from the step-time model)."""

    batch: float
    k: int
    acceptance_length: float  # E[L]*: mean acceptance length (incl. bonus token) where S = 1
    acceptance_rate: float  # (E[L]* - 1) / k, vLLM's accepted / drafted; > 1 means no acceptance can pay
    cost_ratio: float  # c at this batch: drafting time per drafted token / target forward
    verify_ratio: float  # T_SD(B, k) with a free draft / T_base(B): what verifying k+1 tokens costs

    @property
    def reachable(self) -> bool:
        return self.acceptance_rate <= 1.0


def break_even(target: StepTimeModel, draft: DraftCost, *, batch: float, k: int,
               mean_context: float) -> BreakEven:
    """E[L]* with T_SD priced at its own accepted tokens (the draft ingests them), by fixed-point iteration."""
    b = max(1.0, float(batch))
    base = float(baseline_step_time(target, b, mean_context))
    length = 1.0
    for _ in range(30):
        spec = float(speculative_step_time(target, draft, b, k, mean_context, accepted_per_seq=length - 1.0))
        new = spec / base
        if abs(new - length) < 1e-9:
            break
        length = new
    free = float(speculative_step_time(target, DraftCost(method="none"), b, k, mean_context))
    kv = b * mean_context
    fwd = float(target.forward_time(b, kv))
    c = float(draft.time(b, kv, k, target_forward_s=fwd)) / k / fwd if fwd > 0 else 0.0
    return BreakEven(batch=b, k=k, acceptance_length=length, acceptance_rate=(length - 1.0) / k,
                     cost_ratio=c, verify_ratio=free / base)


def iid_length(alpha: float, k: int) -> float:
    """E[L(k)] for i.i.d. per-token acceptance alpha (Leviathan Eq. 1)."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def guard_tax(batch: float, low: tuple[float, float] = GUARD_TAX_LOW,
              high: tuple[float, float] = GUARD_TAX_HIGH) -> float:
    """TPOT tax of running under a per-batch-size schedule at ``batch`` (log-linear between two measurements).

    Interpolates #49548's two points in log(batch) and holds the end values outside them.
    """
    (b0, t0), (b1, t1) = low, high
    b = min(max(float(batch), b0), b1)
    if b1 <= b0:
        return t0
    w = (math.log(b) - math.log(b0)) / (math.log(b1) - math.log(b0))
    return t0 + w * (t1 - t0)


def robust_guard_pick(samples_by_k: dict[int, list[float]], tie: float = 0.01,
                      penalty: float = 1.0) -> tuple[int, float] | None:
    """The k of one batch band by vLLM's unmerged ``tune_speculative_k`` rule (PR #49163).

    Score each k by median − penalty·1.4826·MAD over its repeats (higher speedup is better), then take the
    smallest k whose score is within ``tie`` (1 %) of the best. k = 0 (speculation off) competes with score 1.0
    when it is not measured. Returns (k, score) or None without samples.
    """
    scores: dict[int, float] = {}
    for k, xs in samples_by_k.items():
        vals = np.asarray([x for x in xs if x is not None and math.isfinite(x)], dtype=float)
        if vals.size == 0:
            continue
        med = float(np.median(vals))
        mad = float(np.median(np.abs(vals - med)))
        scores[k] = med - penalty * 1.4826 * mad
    if not scores:
        return None
    scores.setdefault(0, 1.0)
    best = max(scores.values())
    k = min(kk for kk, s in scores.items() if s >= best * (1.0 - tie))
    return k, scores[k]

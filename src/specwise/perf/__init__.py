"""Step-time model (roofline + fixed costs), draft cost by method, and their calibration."""

from specwise.perf.steptime import (
    LLAMA31_8B_H100_FIT,
    CostRatio,
    DraftCost,
    StepTimeModel,
    baseline_step_time,
    closed_loop_speedup,
    draft_cost_ratio,
    speculative_step_time,
)

__all__ = [
    "LLAMA31_8B_H100_FIT",
    "CostRatio",
    "DraftCost",
    "StepTimeModel",
    "baseline_step_time",
    "closed_loop_speedup",
    "draft_cost_ratio",
    "speculative_step_time",
]

"""What decide hands over for production: the config to ship and the thresholds that would flip the verdict."""

from __future__ import annotations

from specwise.decide.adapter import launch_config
from specwise.decide.context import Context
from specwise.decide.rules_guard import GuardChoice
from specwise.decide.rules_acceptance import weighted_acceptance
from specwise.schemas.base import Source
from specwise.schemas.decision import MonitorThresholds, ShipConfig, Verdict

# Margin around the break-even for monitoring (absolute acceptance): within it the pair is near break-even and a
# small drift flips the sign of the gain. 0.05 = the 5-point tolerance the quantisation rule uses.
MONITOR_MARGIN = 0.05


def ship_config(ctx: Context, verdict: Verdict, guard: GuardChoice) -> ShipConfig | None:
    if ctx.plan is None:
        return None
    speculative = verdict in ("ENABLE", "ENABLE_WITH_GUARD")
    sched = guard.schedule if verdict == "ENABLE_WITH_GUARD" else None
    cfg = launch_config(ctx.plan, speculative=speculative, k=ctx.k, guard=sched)
    version = ctx.workload.deployment.vllm_version
    if isinstance(cfg, str):
        return ShipConfig(vllm_version=version, speculative=speculative, vllm_command="",
                          notes=[f"the plan's emitter refused this config: {cfg}"])
    notes = list(cfg.notes)
    if not speculative:
        notes.insert(0, "ship the baseline: no --speculative-config" + (" (re-run decide with the evidence "
                     "asked for before enabling)" if verdict == "BORDERLINE" else ""))
    return ShipConfig(vllm_version=cfg.vllm_version, speculative=speculative, vllm_command=cfg.vllm_command,
                      speculative_config=cfg.speculative_config, guard_schedule=sched,
                      guard_source=guard.source if sched else None,
                      guard_tax_note=guard.tax_note if sched else None, sglang_command=cfg.sglang_command,
                      notes=notes)


def monitor_thresholds(ctx: Context, reference_acceptance: float | None) -> MonitorThresholds:
    be = ctx.be_peak
    m = MonitorThresholds(k=ctx.k)
    if be is not None:
        m.break_even_acceptance = round(be.acceptance_rate, 4)
        m.break_even_acceptance_length = round(be.acceptance_length, 4)
        m.healthy_acceptance = round(min(1.0, be.acceptance_rate + MONITOR_MARGIN), 4)
        m.net_negative_acceptance = round(max(0.0, be.acceptance_rate - MONITOR_MARGIN), 4)
        m.thresholds_source = "decision"
    else:
        m.healthy_acceptance, m.net_negative_acceptance = 0.65, 0.5
        m.thresholds_source = "rule_of_thumb"
    agg = weighted_acceptance(ctx.buckets)
    m.expected_acceptance = round(agg, 4) if agg is not None else None
    m.baseline_acceptance = round(reference_acceptance, 4) if reference_acceptance is not None else m.expected_acceptance
    view = ctx.primary()
    if view is not None:
        cross = next((c for c in view.evidence.run.crossovers
                      if c.temperature == view.temperature and c.baseline_role == view.baseline_role
                      and c.position == "within"), None)
        if cross is not None and cross.value is not None:
            if ctx.workload.load.kind == "qps":
                m.crossover_qps = cross.value
            m.crossover_batch_size = cross.batch_size if cross.batch_size else (
                cross.value if ctx.workload.load.kind == "concurrency" else None)
            m.crossover_source = Source(cross.source)
    slo = ctx.workload.slo
    m.slo_metric = slo.metric
    m.slo_p50_target_s = slo.p50_target
    m.slo_p99_target_s = slo.p99_target
    return m

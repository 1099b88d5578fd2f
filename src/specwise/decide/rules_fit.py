"""Fit rules: does target + speculator fit, what does the draft cost in KV cache and concurrency.

Each rule is a pure function of the :class:`~specwise.decide.context.Context` returning a
:class:`~specwise.schemas.findings.Finding` (thresholds and sources in docs/decide.md).
"""

from __future__ import annotations

from typing import Any

from specwise.decide.adapter import plan_variant
from specwise.decide.context import Context
from specwise.decide.table import finding
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding


def _no_plan(code: str, rule: str) -> Finding:
    return finding(code, rule, "unknown", "no plan: memory not checked",
                   meaning="pass `specwise plan --json` output or a workload profile with the deployment")


def rule_fit(ctx: Context) -> Finding:
    """The plan fits (weights + at least one max_model_len sequence); if not, the quantised alternative."""
    plan = ctx.plan
    if plan is None:
        return _no_plan("plan_fits", "Fit")
    mem = plan.memory
    chosen = mem.speculative or mem.baseline
    if mem.fits:
        return finding("plan_fits", "Fit", "pass",
                       f"fits: {chosen.kv_cache_tokens:,} KV tokens, {chosen.kv_cache_gib:.1f} GiB KV per GPU",
                       threshold=">= 1 max_model_len sequence", observed=round(chosen.max_concurrency, 2),
                       unit="max_model_len sequences", source=Source.estimated,
                       meaning="target, speculator and KV cache fit in the GPUs' memory budget")
    s = mem.settings
    alternatives: list[str] = []
    alt_evidence: dict[str, Any] = {}
    quant_changes = []
    if s.target_quant in ("bf16", "fp16", "fp32"):
        quant_changes = [("FP8", {"target_quant": "fp8"}), ("INT8", {"target_quant": "int8"})]
        if s.method == "draft_model" and s.draft_quant in (None, "bf16", "fp16"):
            quant_changes.append(("FP8 target + FP8 draft", {"target_quant": "fp8", "draft_quant": "fp8"}))
    for label, change in quant_changes:
        budget = plan_variant(plan, change)
        if budget is not None and budget.fits:
            alternatives.append(f"{label}: fits, {budget.kv_cache_tokens:,} KV tokens "
                                f"({budget.kv_cache_gib:.1f} GiB/GPU), {budget.max_concurrency:.2f}x max_model_len, "
                                f"{budget.effective_concurrency_at_context} sequences at {s.context} tokens")
            alt_evidence[f"{label} kv_tokens"] = budget.kv_cache_tokens
            alt_evidence[f"{label} max_concurrency"] = round(budget.max_concurrency, 2)
    for sug in mem.suggestions:
        if not any(sug.action.startswith(x) for x in ("quantise",)):
            alternatives.append(f"{sug.action}: {sug.kv_cache_tokens:,} KV tokens, "
                                f"{sug.max_concurrency:.2f}x max_model_len")
    msg = (f"does not fit: {chosen.weights_gib_per_gpu:.1f} GiB weights per GPU leave "
           f"{chosen.kv_cache_gib:.1f} GiB for KV (max_model_len {s.max_model_len})")
    return finding("plan_fits", "Fit", "fail", msg, threshold=">= 1 max_model_len sequence",
                   observed=round(chosen.max_concurrency, 2), unit="max_model_len sequences",
                   source=Source.estimated, severity="blocking",
                   meaning="would fit: " + "; ".join(alternatives) if alternatives
                   else "no single change in the plan's search fits; use more or bigger GPUs",
                   alternatives=alternatives or None, **alt_evidence)


def rule_draft_vram(ctx: Context) -> Finding:
    plan = ctx.plan
    if plan is None:
        return _no_plan("draft_vram_share", "Draft memory")
    spec = plan.memory.speculative
    if spec is None or plan.memory.settings.method in (None, "ngram"):
        return finding("draft_vram_share", "Draft memory", "pass", "no draft weights (n-gram or no speculator)",
                       threshold=ctx.options.draft_vram_max, observed=0.0, unit="fraction of GPU memory",
                       source=Source.estimated, meaning="n-gram proposes from the prompt on the CPU")
    frac = spec.draft_weights_gib_per_gpu / spec.total_gib
    ok = frac <= ctx.options.draft_vram_max
    return finding("draft_vram_share", "Draft memory", "pass" if ok else "fail",
                   f"draft weights take {frac:.1%} of the fullest GPU", threshold=ctx.options.draft_vram_max,
                   observed=round(frac, 4), unit="fraction of GPU memory", source=Source.estimated,
                   meaning="small enough to leave the KV cache its room" if ok
                   else "the draft crowds out the KV cache: shard it (draft TP) or use a smaller draft")


def rule_target_vram(ctx: Context) -> Finding:
    plan = ctx.plan
    if plan is None:
        return _no_plan("target_vram_share", "Target memory")
    base = plan.memory.baseline
    frac = base.target_weights_gib_per_gpu / base.total_gib
    ok = frac <= ctx.options.target_vram_max
    return finding("target_vram_share", "Target memory", "pass" if ok else "fail",
                   f"target weights take {frac:.0%} of each GPU before any draft",
                   threshold=ctx.options.target_vram_max, observed=round(frac, 4), unit="fraction of GPU memory",
                   source=Source.estimated,
                   meaning="room for a draft and KV" if ok
                   else "little room for a draft and KV: quantise the target or add GPUs")


def rule_kv_concurrency(ctx: Context) -> Finding:
    """KV tokens and concurrency lost to the draft, and whether the peak's concurrency still fits."""
    plan = ctx.plan
    if plan is None:
        return _no_plan("kv_concurrency", "KV / concurrency")
    mem = plan.memory
    spec = mem.speculative or mem.baseline
    need = ctx.batch_peak
    have = spec.effective_concurrency_at_context
    lost = (f"draft costs {mem.kv_tokens_lost:,} KV tokens ({mem.kv_tokens_lost_fraction:.0%}) and "
            f"{mem.concurrency_lost:.1f} max_model_len sequences")
    if need is None:
        return finding("kv_concurrency", "KV / concurrency", "unknown", lost + "; peak concurrency unknown",
                       threshold=have, unit="sequences", source=Source.estimated,
                       meaning="give the load in the workload profile to check the peak",
                       kv_tokens_lost=mem.kv_tokens_lost)
    queued = _measured_queueing(ctx)
    if queued is not None:
        load, waiting, usage = queued
        return finding("kv_concurrency", "KV / concurrency", "fail",
                       f"{lost}; measured at {load:g} {ctx.load_unit}: the speculative server queued up to "
                       f"{waiting:g} requests (KV cache {usage:.0%} full) where the baseline queued none",
                       threshold=0, observed=waiting, unit="requests waiting (server gauge, max)",
                       source=Source.measured, meaning="the draft's KV cost shows up as queueing at this load, "
                       "which speculation cannot win back", kv_tokens_lost=mem.kv_tokens_lost)
    ok = need <= have
    msg = f"{lost}; peak needs ~{need:.0f} running sequences, the speculative server holds {have}"
    return finding("kv_concurrency", "KV / concurrency", "pass" if ok else "fail", msg, threshold=have,
                   observed=round(need, 1), unit="running sequences at the peak", source=Source.estimated,
                   meaning="the peak still fits after the draft" if ok
                   else "the peak no longer fits: requests queue (preemption), which speculation cannot win back",
                   kv_tokens_lost=mem.kv_tokens_lost, kv_tokens_lost_fraction=round(mem.kv_tokens_lost_fraction, 4),
                   batch_source=ctx.batch_source)


def _measured_queueing(ctx: Context) -> tuple[float, float, float] | None:
    """(load, max waiting, max KV usage) of the first load at or below the peak where the measured speculative
    arm queued requests and the baseline did not (the servers' gauges sampled by bench)."""
    for r in ctx.evidence.runs:
        if not r.measured:
            continue
        base = {(c.load, c.temperature): c for c in r.run.cells if c.role == "baseline"}
        for c in sorted((c for c in r.run.cells if c.role == "speculative" and c.load is not None),
                        key=lambda c: c.load):
            b = base.get((c.load, c.temperature))
            if c.load > ctx.peak * 1.0001 or b is None:
                continue
            if (c.num_requests_waiting_max or 0) > 0 and not (b.num_requests_waiting_max or 0) > 0:
                return c.load, float(c.num_requests_waiting_max or 0), float(c.kv_cache_usage_max or 0.0)
    return None


def rule_plan_vs_startup(ctx: Context) -> Finding:
    """The plan's memory accounting against what a launched server logged at startup (bench's memory check)."""
    from specwise.decide.adapter import run_findings, server

    checked = False
    for r in ctx.evidence.runs:
        if not r.measured:
            continue
        for f in run_findings(r.run):
            if f.message.startswith("STARTUP MEMORY DIFFERS"):
                return finding("plan_vs_startup_memory", "Plan vs startup log", "fail", f.message[:300],
                               source=Source.measured, run=r.path,
                               meaning="the plan's KV and concurrency rows do not describe this server: re-plan "
                               "with `specwise plan --check-log STARTUP.log` and trust the server's numbers")
        for role in ("baseline", "speculative"):
            info = server(r.run, role) or {}
            checked = checked or bool(info.get("memory_check"))
    if checked:
        return finding("plan_vs_startup_memory", "Plan vs startup log", "pass",
                       "the launched servers' startup memory matches the plan", source=Source.measured)
    return finding("plan_vs_startup_memory", "Plan vs startup log", "unknown",
                   "no launched server's startup log to check the plan against",
                   meaning="`specwise bench --baseline-cmd/--speculative-cmd` checks it when it launches the servers")

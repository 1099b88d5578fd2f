"""Guard viability: is a per-batch-size k schedule (``num_speculative_tokens_per_batch_size``) worth its cost?

Measured per-k repeats choose k per band by median − 1.4826·MAD with ties within 1 % to the smaller k (vLLM's
unmerged ``tune_speculative_k``). A guard is labelled measured only when a bench arm ran with it; a simulated
guard carries the tax vLLM issue #49548 measured (configurable in :class:`DecideOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from specwise.catalog.vllm_versions import version_facts
from specwise.decide.adapter import server_k, speculative_config
from specwise.decide.breakeven import guard_tax, robust_guard_pick
from specwise.decide.context import Context, interpolate
from specwise.decide.table import finding
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding


GUARD_KEY = "num_speculative_tokens_per_batch_size"


def guard_supported(version: str) -> bool:
    """Does this vLLM honour a per-batch-size k schedule (catalog version facts)?"""
    from specwise.errors import UserError

    try:
        return version_facts(version).knows_key(GUARD_KEY)
    except (UserError, ValueError):
        return False


@dataclass
class GuardChoice:
    schedule: list[list[int]] | None
    source: Source | None
    tax_note: str | None
    viable: bool | None


def measured_guard_runs(ctx: Context):
    """Measured runs whose speculative server ran with a per-batch-size schedule."""
    out = []
    for r in ctx.evidence.runs:
        cfg = speculative_config(r.run) if r.measured else {}
        if cfg.get("num_speculative_tokens_per_batch_size"):
            out.append((r, [list(map(int, x)) for x in cfg["num_speculative_tokens_per_batch_size"]]))
    return out


def schedule_from_k_runs(ctx: Context) -> list[list[int]] | None:
    """Per-band k from measured closed-loop runs at several fixed k (bands = the concurrencies run)."""
    by_load: dict[float, dict[int, list[float]]] = {}
    for r in ctx.evidence.runs:
        k = server_k(r.run)
        if not r.measured or k is None:
            continue
        for c in r.run.comparisons:
            if c.load_kind != "concurrency" or c.load is None:
                continue
            xs = [x for x in c.per_repeat.get("speedup_e2e_p50", []) if x is not None]
            xs = xs or ([c.speedup_e2e_p50.value] if c.speedup_e2e_p50.value is not None else [])
            by_load.setdefault(float(c.load), {}).setdefault(k, []).extend(xs)
    if not by_load or len({k for v in by_load.values() for k in v}) < 2:
        return None
    rows: list[list[int]] = []
    loads = sorted(by_load)
    for i, load in enumerate(loads):
        pick = robust_guard_pick(by_load[load], tie=ctx.options.guard_tie)
        if pick is None:
            continue
        lo = 1 if i == 0 else int(loads[i - 1]) + 1
        hi = int(load) if i < len(loads) - 1 else max(int(load), 1024)
        if rows and rows[-1][2] == pick[0]:
            rows[-1][1] = hi
        else:
            rows.append([lo, hi, pick[0]])
    return rows


def choose_guard(ctx: Context) -> GuardChoice:
    measured = measured_guard_runs(ctx)
    if measured:
        return GuardChoice(measured[0][1], Source.measured, None, None)
    sched = schedule_from_k_runs(ctx)
    if sched:
        return GuardChoice(sched, Source.measured, "chosen from measured fixed-k arms; not yet run as one "
                           "schedule (a bench arm with it makes the tax measured)", None)
    for r in ctx.evidence.runs:
        if r.guard_schedule:
            return GuardChoice(r.guard_schedule, Source.simulated, _tax_note(ctx), None)
    return GuardChoice(None, None, None, None)


def _tax_note(ctx: Context) -> str:
    o = ctx.options
    return (f"simulated guard taxed +{o.guard_tax_low[1]:.1%} TPOT at {o.guard_tax_low[0]:g} running, "
            f"+{o.guard_tax_high[1]:.1%} at {o.guard_tax_high[0]:g} (log-linear between), and "
            f"{o.guard_cudagraph_downgrade:.0%} single-stream for the CUDA-graph downgrade (vLLM issue #49548)")


def rule_guard(ctx: Context) -> Finding:
    """Is the guard worth it at the peak after its tax, and is it labelled by how it is known?"""
    g = choose_guard(ctx)
    if g.schedule is None:
        return finding("guard_viability", "Guard", "unknown", "no guard schedule in the evidence",
                       meaning="simulate recommends one; bench with it to measure its cost")
    k0 = [r for r in g.schedule if r[2] == 0]
    text = ", ".join(f"{lo}-{hi}:{k}" for lo, hi, k in g.schedule)
    if len({k for _, _, k in g.schedule}) == 1:
        return finding("guard_viability", "Guard", "pass", f"the recommended schedule [{text}] keeps one k at every "
                       "batch: no guard needed", observed=text, source=g.source, schedule=text,
                       meaning="ship fixed k (no per-batch-size schedule, no schedule tax)")
    version = ctx.workload.deployment.vllm_version
    if not guard_supported(version):
        since = version_facts().key_interval(GUARD_KEY)[0]
        return finding("guard_viability", "Guard", "fail", f"guard [{text}] needs {GUARD_KEY} (vLLM {since}+); "
                       f"the deployment runs vLLM {version}", observed=version, threshold=since,
                       source=Source.estimated, schedule=text,
                       meaning="upgrade vLLM for the guard, or pick one k that pays at the peak (V1 ignores "
                       "disable_by_batch_size)")
    if g.source == Source.measured and g.tax_note is None:
        guard_run = measured_guard_runs(ctx)[0][0]
        view = next((v for v in ctx.views if v.evidence is guard_run), None)
        s = interpolate(view.points, ctx.peak) if view else None
        ok = bool(s and s.value and s.value >= 1.0)
        return finding("guard_viability", "Guard", "pass" if ok else "fail", f"measured with the guard [{text}]"
                       + (f": {s.value:.2f}x at the peak" if s and s.value else ""), observed=text,
                       source=Source.measured, meaning="the guard pays at the peak, tax included" if ok
                       else "even with the guard speculation loses at the peak", schedule=text)
    # simulated guard: apply the tax at the peak's running batch
    batch = ctx.batch_peak or 1.0
    tax = guard_tax(batch, ctx.options.guard_tax_low, ctx.options.guard_tax_high)
    if batch < 2:
        tax += ctx.options.guard_cudagraph_downgrade
    sims = [r for r in ctx.evidence.runs if r.guard_schedule]
    raw = None
    if sims and sims[0].guard_speedups:
        pts = sorted((k, v) for k, v in sims[0].guard_speedups.items() if v is not None)
        for (la, va), (lb, vb) in zip(pts, pts[1:]):
            if la <= ctx.peak <= lb:
                raw = va + (ctx.peak - la) / (lb - la) * (vb - va) if lb > la else va
        if raw is None and pts and ctx.peak <= pts[0][0]:
            raw = pts[0][1]
    if raw is None:
        return finding("guard_viability", "Guard", "unknown", f"guard [{text}] ({g.source.value}); its speedup at the "
                       "peak is not in the evidence", observed=text, source=g.source, meaning=g.tax_note or "",
                       schedule=text, k0_bands=len(k0))
    taxed = raw / (1.0 + tax)
    ok = taxed > 1.0
    return finding("guard_viability", "Guard", "pass" if ok else "fail",
                   f"guard [{text}]: {raw:.2f}x simulated at the peak, {taxed:.2f}x after a {tax:.1%} tax",
                   threshold=1.0, observed=round(taxed, 3), unit="speedup E2E P50 after tax", source=g.source,
                   meaning=(g.tax_note or "") + ("; labelled simulated until a bench arm runs with it"),
                   schedule=text, tax=round(tax, 4), untaxed=round(raw, 3))

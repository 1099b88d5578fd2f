"""Acceptance rules: per-bucket acceptance vs this pair's break-even, P10, temperature, quantisation, method.

Break-even comes from :mod:`specwise.decide.breakeven` at the batch the peak load implies (the highest, so the
strictest); the seed's 0.5 / 0.65 lines are shown beside it as rules of thumb and never decide.
"""

from __future__ import annotations

import re

from specwise.decide.adapter import server
from specwise.decide.breakeven import RULE_OF_THUMB_HEALTHY, RULE_OF_THUMB_NET_NEGATIVE
from specwise.decide.context import TEMPERATURE_MATCH, Bucket, Context
from specwise.decide.table import finding
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding

QUANT_NAME = re.compile(r"(awq|gptq|int4|int8|w4a16|w8a8|fp8|nf4|bnb|4bit|8bit|q4|q8)", re.IGNORECASE)


def acc(x: float) -> str:
    """An acceptance for display: two decimals, three below 0.1 (an n-gram break-even is near 0)."""
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def _be_text(ctx: Context) -> str:
    be = ctx.be_peak
    if be is None:
        return "break-even unknown (model not in the catalog)"
    return (f"break-even {acc(be.acceptance_rate)} (E[L] {be.acceptance_length:.2f}) at batch {be.batch:.0f}, "
            f"k={be.k}, c={be.cost_ratio:.3f}")


def rule_acceptance_buckets(ctx: Context) -> list[Finding]:
    """One row per temperature bucket / category: its acceptance against the pair's break-even at the peak."""
    out = []
    be = ctx.be_peak
    for b in ctx.buckets:
        code, name = "acceptance_vs_break_even", f"Acceptance {b.name} (T={b.temperature:g}, {b.share:.0%})"
        if b.acceptance is None:
            out.append(finding(code, name, "unknown", "no acceptance evidence for this bucket",
                               threshold=None if be is None else round(be.acceptance_rate, 3),
                               meaning="run `specwise estimate` on prompts of this category at this temperature"))
            continue
        if be is None:
            out.append(finding(code, name, "unknown", f"acceptance {b.acceptance:.2f}; " + _be_text(ctx),
                               observed=round(b.acceptance, 3), source=b.source))
            continue
        ok = b.length is not None and b.length > be.acceptance_length
        msg = (f"acceptance {b.acceptance:.2f} (E[L] {b.length:.2f}) vs {_be_text(ctx)}; rules of thumb "
               f"{RULE_OF_THUMB_NET_NEGATIVE}/{RULE_OF_THUMB_HEALTHY}")
        out.append(finding(code, name, "pass" if ok else "fail", msg, threshold=round(be.acceptance_rate, 3),
                           observed=round(b.acceptance, 3), unit="accepted/drafted (vLLM)", source=b.source,
                           meaning=("pays at the peak batch" if ok else "below break-even: speculation slows "
                                    "these requests at the peak batch"),
                           category=b.name, temperature=b.temperature, share=round(b.share, 4),
                           acceptance_length=round(b.length or 0.0, 3),
                           break_even_length=round(be.acceptance_length, 3), origin=b.origin,
                           rule_of_thumb_net_negative=RULE_OF_THUMB_NET_NEGATIVE,
                           rule_of_thumb_healthy=RULE_OF_THUMB_HEALTHY))
    return out


def weighted_acceptance(buckets: list[Bucket]) -> float | None:
    known = [b for b in buckets if b.acceptance is not None]
    if not known:
        return None
    total = sum(b.share for b in known)
    return sum(b.share * (b.acceptance or 0.0) for b in known) / total


def rule_acceptance_weighted(ctx: Context) -> Finding:
    """The share-weighted aggregate, shown with the share of traffic below break-even (never decides alone)."""
    agg = weighted_acceptance(ctx.buckets)
    be = ctx.be_peak
    if agg is None or be is None:
        return finding("acceptance_weighted", "Acceptance (weighted)", "unknown",
                       "no acceptance evidence" if agg is None else f"weighted acceptance {agg:.2f}; " + _be_text(ctx))
    below = sum(b.share for b in ctx.buckets if b.length is not None and b.length <= be.acceptance_length)
    ok = below == 0.0
    return finding("acceptance_weighted", "Acceptance (weighted)", "pass" if ok else "fail",
                   f"weighted acceptance {agg:.2f} vs break-even {acc(be.acceptance_rate)}; {below:.0%} of traffic "
                   "is in buckets below break-even", threshold=round(be.acceptance_rate, 3), observed=round(agg, 3),
                   unit="accepted/drafted (vLLM), share-weighted",
                   source=min((b.source for b in ctx.buckets if b.source), key=_rank, default=None),
                   meaning="every bucket pays" if ok else "an aggregate hides the buckets that lose: decide per "
                   "bucket", share_below_break_even=round(below, 4))


def _rank(s: Source) -> int:
    return ["assumed", "estimated", "simulated", "measured"].index(Source(s).value)


def rule_p10(ctx: Context) -> Finding:
    """P10 of per-request acceptance below break-even: one request in ten is slowed."""
    be = ctx.be_peak
    rows = [(b, b.p10) for b in ctx.buckets if b.p10 is not None]
    if not rows or be is None:
        return finding("p10_below_break_even", "P10 acceptance", "unknown", "no per-request acceptance",
                       meaning="bench (per-request metrics) or estimate records it")
    worst_b, worst = min(rows, key=lambda r: r[1])
    ok = worst > be.acceptance_rate
    return finding("p10_below_break_even", "P10 acceptance", "pass" if ok else "fail",
                   f"lowest bucket P10 {worst:.2f} ({worst_b.name}) vs break-even {acc(be.acceptance_rate)}",
                   threshold=round(be.acceptance_rate, 3), observed=round(worst, 3), unit="accepted/drafted",
                   source=worst_b.source,
                   meaning="nine in ten requests or more pay" if ok else "at least 10% of requests are slowed: "
                   "tail latency (P99) can regress while P50 improves",
                   per_bucket=[f"{b.name}={v:.3f}" for b, v in rows])


def rule_temperature(ctx: Context) -> list[Finding]:
    """Median production temperature > 0.7 (a warning); evidence only below the production temperature cannot
    support ENABLE (coverage)."""
    med = ctx.workload.median_temperature()
    lim = ctx.options.median_temperature_max
    hot = med > lim
    median_row = finding("temperature_median", "Temperature", "fail" if hot else "pass",
                         f"median production temperature {med:g}" + (" (above 0.7)" if hot else ""),
                         threshold=lim, observed=med, unit="temperature", source=Source.assumed,
                         meaning="high temperature lowers acceptance for argmax and sampled drafts alike; only "
                         "evidence at this temperature counts" if hot else "low temperature: acceptance at its best")
    # assumed acceptance is weak whatever its temperature (firmness says so); only evidence counts here
    under = [b for b in ctx.buckets if b.evidence_temperature is not None and b.firmness != "assumed"
             and b.evidence_temperature < b.temperature - TEMPERATURE_MATCH]
    run_temps = sorted({v.temperature for v in ctx.views if v.temperature is not None and v.evidence.measured})
    if run_temps and max(run_temps) < med - TEMPERATURE_MATCH:
        under = under or list(ctx.buckets)
    firm = [b for b in ctx.buckets if b.firmness != "assumed" and b.evidence_temperature is not None]
    if under:
        def ev_t(b: Bucket) -> float:
            return b.evidence_temperature if b.evidence_temperature is not None else max(run_temps)
        names = ", ".join(f"{b.name} (T={b.temperature:g}, evidence T={ev_t(b):g})" for b in under)
        coverage = finding("temperature_coverage", "Temperature coverage", "fail",
                           f"evidence only below production temperature for {names}", threshold=med,
                           observed=max([ev_t(b) for b in under]), unit="temperature", source=Source.measured
                           if any(b.firmness == "measured" for b in ctx.buckets) or run_temps else Source.estimated,
                           meaning="acceptance falls with temperature: this evidence cannot support ENABLE; measure "
                           "at the production temperature", median_temperature=med)
    elif firm or run_temps:
        coverage = finding("temperature_coverage", "Temperature coverage", "pass",
                           "acceptance and load evidence taken at the production temperatures",
                           threshold=TEMPERATURE_MATCH, unit="temperature difference allowed",
                           source=Source.measured if run_temps else Source.estimated)
    else:
        coverage = finding("temperature_coverage", "Temperature coverage", "unknown",
                           "no estimated or measured acceptance: nothing taken at any temperature yet",
                           meaning="estimate or bench at the workload's temperatures")
    return [median_row, coverage]


def _is_quantised(name: str | None) -> bool:
    return bool(name and QUANT_NAME.search(name))


def rule_quantisation(ctx: Context) -> Finding:
    """Acceptance drop > 5 points against the unquantised reference (estimate rows, two profiles or two runs)."""
    lim = ctx.options.quant_drop_max
    for p in ctx.evidence.profiles:
        if p.estimate is None:
            continue
        rows = [q for q in p.estimate.quantization if q.drop is not None]
        if rows:
            worst = max(rows, key=lambda q: q.drop or 0.0)
            return _quant_finding(worst.drop or 0.0, lim, f"{worst.quantized} at T={worst.temperature:g} "
                                  f"({worst.acceptance_rate_reference:.2f} -> {worst.acceptance_rate_quantized:.2f})",
                                  Source.estimated, worst.acceptance_rate_reference)
    refs = [p for p in ctx.evidence.profiles if p.reference or not _is_quantised(p.profile.target)]
    quants = [p for p in ctx.evidence.profiles if not p.reference and _is_quantised(p.profile.target)]
    if refs and quants:
        drops = []
        for b in ctx.buckets:
            r = refs[0].profile.lookup(b.name, b.temperature).acceptance_rate(ctx.k)
            q = quants[0].profile.lookup(b.name, b.temperature).acceptance_rate(ctx.k)
            drops.append((r - q, b, r, q))
        d, b, r, q = max(drops, key=lambda x: x[0])
        return _quant_finding(d, lim, f"{quants[0].profile.target} vs {refs[0].profile.target} on {b.name} "
                              f"({r:.2f} -> {q:.2f})", Source.estimated, r)
    runs = [r for r in ctx.evidence.runs if r.measured]
    tagged = [(r, (server(r.run, "speculative") or {}).get("model")) for r in runs]
    rq = [(r, m) for r, m in tagged if _is_quantised(m)]
    rr = [(r, m) for r, m in tagged if m and not _is_quantised(m)]
    if rq and rr:
        def acc(r) -> float | None:
            cells = [c.acceptance_rate_metrics for c in r.run.cells
                     if c.role == "speculative" and c.acceptance_rate_metrics is not None]
            return sum(cells) / len(cells) if cells else None
        a_ref, a_q = acc(rr[0][0]), acc(rq[0][0])
        if a_ref is not None and a_q is not None:
            return _quant_finding(a_ref - a_q, lim, f"{rq[0][1]} vs {rr[0][1]} ({a_ref:.2f} -> {a_q:.2f})",
                                  Source.measured, a_ref)
    return finding("quantisation_drop", "Quantisation", "unknown", "no unquantised reference to compare",
                   threshold=lim, unit="acceptance points",
                   meaning="with a quantised target, estimate both checkpoints (`specwise estimate "
                   "--target-quantize`) or bench both")


def _quant_finding(drop: float, lim: float, what: str, source: Source, reference: float | None) -> Finding:
    ok = drop <= lim
    return finding("quantisation_drop", "Quantisation", "pass" if ok else "fail",
                   f"acceptance drop {drop * 100:.1f} points: {what}", threshold=lim, observed=round(drop, 4),
                   unit="acceptance (absolute)", source=source,
                   meaning="quantisation keeps acceptance" if ok else "revisit quantisation: the quantised target "
                   "agrees less with its draft; try FP8/INT8 or a draft quantised the same way",
                   reference_acceptance=reference)


def _method_speedup(ctx: Context, method: str, draft: str | None, length: float) -> float | None:
    """Closed-loop speedup at the peak batch for ``method`` with this E[L] (its own draft cost, §8.3)."""
    from specwise.decide.adapter import pair_cost
    from specwise.perf.steptime import closed_loop_speedup

    d = ctx.workload.deployment
    if method == d.method and ctx.cost is not None:
        cost = ctx.cost
    else:
        alt = ctx.workload.model_copy(update={"deployment": d.model_copy(update={
            "method": method, "draft": draft if method != "ngram" else None})})
        cost = pair_cost(alt)
    if cost is None:
        return None
    return float(closed_loop_speedup(cost.target, cost.draft, ctx.batch_peak or 1.0, ctx.k, ctx.mean_context,
                                     length))


def rule_method(ctx: Context) -> Finding:
    """n-gram vs draft model vs EAGLE/MTP per category, from per-category evidence of more than one method.

    Each method is priced with its own draft cost at the peak batch (an n-gram lookup is almost free, a draft
    model costs its c per drafted token), so a higher E[L] does not win by itself.
    """
    methods: dict[str, dict[str, float]] = {}
    drafts: dict[str, str | None] = {}
    for p in ctx.evidence.profiles:
        if p.reference:
            continue
        cats = {c.category for c in p.profile.classes}
        drafts.setdefault(p.profile.method, p.profile.draft or ctx.workload.deployment.draft)
        for b in ctx.buckets:
            if b.name in cats or "all" in cats:
                length = p.profile.lookup(b.name, b.temperature).mean_acceptance_length(ctx.k)
                sp = _method_speedup(ctx, p.profile.method, drafts[p.profile.method], length)
                if sp is not None:
                    methods.setdefault(p.profile.method, {})[b.name] = sp
    if len(methods) < 2:
        have = next(iter(methods), ctx.method)
        return finding("method_choice", "Method", "unknown", f"evidence for one method only ({have})",
                       meaning="compare methods per category: `specwise estimate --method ngram,draft_model` on "
                       "prompts of each category")
    best = {b.name: max(methods, key=lambda m: methods[m].get(b.name, 0.0)) for b in ctx.buckets}
    chosen = ctx.method
    losers = [n for n, m in best.items() if m != chosen]
    text = "; ".join(f"{n}: {m} ({methods[m].get(n, 0):.2f}x)" for n, m in best.items())
    return finding("method_choice", "Method", "pass" if not losers else "fail",
                   f"best per category at the peak batch: {text}", observed=chosen, source=Source.estimated,
                   meaning=f"{chosen} is the best proposer for every category" if not losers
                   else f"{chosen} is not the best for {', '.join(losers)}: consider the method shown (closed-loop "
                   "speedup from each method's acceptance and draft cost, estimated)",
                   per_method=[f"{m} {n}={v:.2f}x" for m, row in methods.items() for n, v in row.items()])


ACCEPTANCE_AGREEMENT = 0.10  # estimate (user's prompt set) vs server (production traffic): different text


def rule_acceptance_agreement(ctx: Context) -> Finding:
    """Estimated vs measured acceptance per bucket beyond 0.10: the measurement decides, the estimate is suspect."""
    estimated = [p for p in ctx.evidence.profiles if not p.reference and p.profile.source == Source.estimated]
    pairs = []
    for b in ctx.buckets:
        if b.firmness != "measured" or b.acceptance is None or not estimated:
            continue
        cls = estimated[0].profile.lookup(b.name, b.temperature)
        if abs(cls.temperature - b.temperature) > TEMPERATURE_MATCH:
            continue
        pairs.append((b, cls.acceptance_rate(ctx.k)))
    if not pairs:
        return finding("acceptance_disagreement", "Estimate vs measured", "unknown",
                       "nothing to cross-check (needs estimated and measured acceptance at one temperature)")
    b, est = max(pairs, key=lambda x: abs(x[1] - (x[0].acceptance or 0.0)))
    diff = est - (b.acceptance or 0.0)
    ok = abs(diff) <= ACCEPTANCE_AGREEMENT
    return finding("acceptance_disagreement", "Estimate vs measured", "pass" if ok else "fail",
                   f"{b.name} T={b.temperature:g}: estimated {est:.2f}, measured {b.acceptance:.2f}",
                   threshold=ACCEPTANCE_AGREEMENT, observed=round(diff, 3), unit="acceptance (estimated - measured)",
                   source=Source.measured,
                   meaning="the estimate describes production" if ok else "the measurement decides; re-estimate on "
                   "prompts sampled from production traffic (`specwise estimate --prompts`) before trusting the "
                   "estimate for other buckets or k")

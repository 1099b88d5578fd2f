"""Load rules: speedup (with its interval) at the typical and peak load, SLO type, mixed workload, noise,
disagreeing evidence, like-for-like arms and losslessness.

A speedup is baseline latency / speculative latency (E2E P50 unless named); > 1 means speculation is faster.
"""

from __future__ import annotations

from specwise.crossover import crossover_sentence
from specwise.decide.adapter import run_findings
from specwise.decide.commands import MAX_REPEATS, MIN_REPEATS, bench_command, calibrate_command, repeats_needed
from specwise.decide.context import TEMPERATURE_MATCH, Context, RunView, interpolate, like_for_like_diffs, views_of
from specwise.decide.rules_acceptance import weighted_acceptance
from specwise.decide.table import finding
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding
from specwise.schemas.results import SpeedupCI

ISSUE_26504 = ("vLLM issue #26504: acceptance stayed 0.86-0.91 from batch 1 to 32 while the right choice flipped "
               "from +23% to -16%")


def _src(view: RunView) -> Source:
    return Source(view.evidence.run.source)


def _ci_text(s: SpeedupCI) -> str:
    if s.ci_low is not None and s.ci_high is not None:
        return f"{s.value:.2f}x [{s.ci_low:.2f}, {s.ci_high:.2f}]"
    return f"{s.value:.2f}x (no interval)"


def classify(s: SpeedupCI | None) -> str:
    """win / loss / tie (interval includes 1) / unknown, for one speedup."""
    if s is None or s.value is None:
        return "unknown"
    if s.ci_low is not None and s.ci_high is not None:
        if s.ci_low > 1.0:
            return "win"
        if s.ci_high < 1.0:
            return "loss"
        return "tie"
    return "win" if s.value > 1.0 else "loss"


def _load_rule(ctx: Context, load: float, which: str) -> Finding:
    code, name = f"load_{which}", f"Load ({which} {load:g} {ctx.load_unit})"
    view = ctx.primary()
    if view is None:
        return finding(code, name, "unknown", "no simulated or measured run",
                       meaning="run `specwise bench` (or let decide simulate)")
    # a TPOT SLO is judged on TPOT; every other SLO on end-to-end latency
    attr = "tpot_p50" if ctx.workload.slo.metric == "tpot" else "e2e_p50"
    unit = f"speedup {attr.split('_')[0].upper()} P50"
    s = interpolate(view.points, load, attr)
    known = [p for p in view.points if getattr(p, attr) is not None and getattr(p, attr).value is not None]
    loads = [p.load for p in known]
    values = [round(getattr(p, attr).value, 3) for p in known]
    with_ci = all(getattr(p, attr).ci_low is not None and getattr(p, attr).ci_high is not None for p in known)
    lows = [round(getattr(p, attr).ci_low, 3) for p in known] if known and with_ci else None
    highs = [round(getattr(p, attr).ci_high, 3) for p in known] if known and with_ci else None
    cross = next((c for c in view.evidence.run.crossovers
                  if c.temperature == view.temperature and c.baseline_role == view.baseline_role), None)
    extra = dict(loads=loads, speedups=values, baseline_role=view.baseline_role,
                 speedup_ci_low=lows, speedup_ci_high=highs,
                 crossover=crossover_sentence(cross) if cross else None,
                 crossover_load=cross.value if cross else None, run=view.evidence.path)
    if s is None:
        last = getattr(view.points[-1], attr) if view.points else None
        if last is not None and classify(last) == "loss":
            return finding(code, name, "fail", f"slower already at {loads[-1]:g} {ctx.load_unit}, below this load: "
                           f"{_ci_text(last)}", threshold=1.0, observed=last.value, unit=unit,
                           source=_src(view), meaning="speculation loses before this load", **extra)
        return finding(code, name, "unknown", f"load beyond the highest run ({loads[-1]:g} {ctx.load_unit})"
                       if loads else "no comparisons", threshold=1.0, unit=unit, source=_src(view),
                       meaning="measure at this load: speedups are not extrapolated", **extra)
    kind = classify(s)
    status = {"win": "pass", "loss": "fail"}.get(kind, "unknown")
    meaning = {"win": "speculation is faster here", "loss": "speculation is slower here",
               "tie": "the interval includes 1.0: not a win (and not a loss)"}.get(kind, "")
    text = f"speedup {_ci_text(s)} at {load:g} {ctx.load_unit}"
    if which == "peak" and cross is not None:
        if cross.position == "within" and cross.value is not None:
            side = "below" if cross.value < load else "above"
            text += f"; crossover {cross.value:.3g} {ctx.load_unit} ({cross.source}), {side} the peak"
        elif cross.position == "above_range":
            text += f"; no crossover up to {max(cross.loads):g} {ctx.load_unit} ({cross.source})"
    return finding(code, name, status, text, threshold=1.0,
                   observed=round(s.value, 4) if s.value is not None else None, unit=unit,
                   source=_src(view), meaning=meaning, ci_low=s.ci_low, ci_high=s.ci_high, **extra)


def rule_load_typical(ctx: Context) -> Finding:
    return _load_rule(ctx, ctx.typical, "typical")


def rule_load_peak(ctx: Context) -> Finding:
    return _load_rule(ctx, ctx.peak, "peak")


def rule_acceptance_alone(ctx: Context) -> Finding:
    """At the peak, acceptance alone does not decide: a speedup measured or simulated at that load must."""
    view = ctx.primary()
    s = interpolate(view.points, ctx.peak) if view else None
    if s is None:
        return finding("acceptance_alone_at_peak", "Peak needs load evidence", "unknown",
                       "no speedup at the peak load: acceptance alone cannot decide there", meaning=ISSUE_26504)
    return finding("acceptance_alone_at_peak", "Peak needs load evidence", "pass",
                   f"decided by the speedup at the peak ({_src(view).value}), not by acceptance",
                   source=_src(view), meaning=ISSUE_26504)


def rule_slo(ctx: Context) -> Finding:
    """A TTFT-bound SLO is not helped (TTFT may worsen); throughput SLOs by the throughput ratio."""
    slo = ctx.workload.slo
    view = ctx.primary()
    at = ctx.peak
    if slo.metric == "ttft":
        s = interpolate(view.points, at, "ttft_p50") if view else None
        change = (f"; TTFT P50 changes {1 / s.value - 1:+.0%} at {at:g} {ctx.load_unit} ({_src(view).value})"
                  if s is not None and s.value else "")
        return finding("slo_type", "SLO type", "fail", "TTFT-bound SLO: speculation speeds up decoding, not the "
                       "first token" + change, threshold="tpot/e2e/throughput", observed="ttft",
                       source=_src(view) if s is not None else Source.assumed,
                       meaning="speculation does not help this SLO (the draft adds prefill work and memory): keep "
                       "it off unless TPOT/E2E also matter", ttft_speedup=s.value if s is not None else None)
    if slo.metric == "throughput":
        pts = [p for p in view.points if p.throughput_ratio is not None] if view else []
        near = min(pts, key=lambda p: abs(p.load - at)) if pts else None
        if near is None:
            return finding("slo_type", "SLO type", "unknown", "throughput SLO: no throughput ratio in the evidence",
                           threshold=1.0, meaning="speculation helps throughput only below saturation")
        ok = near.throughput_ratio > 1.0
        return finding("slo_type", "SLO type", "pass" if ok else "fail",
                       f"throughput ratio {near.throughput_ratio:.2f} at {near.load:g} {ctx.load_unit}",
                       threshold=1.0, observed=round(near.throughput_ratio, 3), unit="speculative / baseline tok/s",
                       source=_src(view), meaning="raises throughput here" if ok else "costs throughput at this "
                       "load: saturated servers lose to speculation")
    return finding("slo_type", "SLO type", "pass", f"{slo.metric.upper()}-bound SLO: the metric speculation targets",
                   observed=slo.metric, source=Source.assumed,
                   meaning="decided by the speedup at the production load")


def rule_mixed(ctx: Context) -> Finding:
    """P50 improves while P99 regresses, or buckets straddle break-even: the mixed-workload diagnosis."""
    be = ctx.be_peak
    view = ctx.primary()
    split = []
    if view is not None:
        for p in view.points:
            if p.load <= ctx.peak * 1.0001 and classify(p.e2e_p50) == "win" and classify(p.e2e_p99) == "loss":
                split.append(p.load)
    win = [b for b in ctx.buckets if be and b.length is not None and b.length > be.acceptance_length]
    lose = [b for b in ctx.buckets if be and b.length is not None and b.length <= be.acceptance_length]
    straddle = bool(win and lose and min(sum(b.share for b in win), sum(b.share for b in lose)) >= 0.1)
    per_bucket = [f"{b.name} T={b.temperature:g}: {b.acceptance:.2f}" for b in ctx.buckets if b.acceptance is not None]
    if not split and not straddle:
        return finding("mixed_workload", "Mixed workload", "pass", "no P50-up/P99-down split and no bucket below "
                       "break-even beside one above", observed=per_bucket or None,
                       meaning="the traffic behaves as one workload")
    temps = {}
    for v in ctx.views:
        if v.temperature is not None and v.firmness == (view.firmness if view else None):
            s = interpolate(v.points, ctx.peak) or (v.points[-1].e2e_p50 if v.points else None)
            if s is not None and s.value is not None:
                temps[v.temperature] = s.value
    confirmed = (len(temps) >= 2 and min(temps.values()) < 1.0 < max(temps.values())) or (
        straddle and all(b.firmness == "measured" for b in win + lose))
    refuted = len(temps) >= 2 and (min(temps.values()) >= 1.0 or max(temps.values()) <= 1.0) and not straddle
    why = []
    if split:
        why.append(f"E2E P50 faster but P99 slower at {', '.join(f'{x:g}' for x in split)} {ctx.load_unit}")
    if straddle:
        agg = weighted_acceptance(ctx.buckets)
        hides = be is not None and agg is not None and agg > be.acceptance_rate
        why.append("buckets on both sides of break-even (" + "; ".join(per_bucket) + ")"
                   + (f" while the share-weighted aggregate {agg:.2f} looks healthy" if hides else ""))
    if confirmed:
        meaning = ("confirmed by per-temperature evidence: the low-temperature traffic gains while the "
                   "high-temperature traffic loses; route by temperature/category (speculate only where it pays)")
    elif refuted:
        meaning = "refuted: per-temperature cells all move the same way; look at the tail (P10 acceptance, queueing)"
    else:
        cmd = bench_command(ctx.workload, ctx.plan, out=ctx.options.bench_out,
                            temperatures=sorted({b.temperature for b in ctx.buckets}))
        meaning = f"unconfirmed: measure each temperature bucket: {cmd}"
    return finding("mixed_workload", "Mixed workload", "unknown" if refuted else "fail", "; ".join(why),
                   observed=per_bucket or None, source=min((b.source for b in ctx.buckets if b.source),
                                                           key=lambda s: ["assumed", "estimated", "simulated",
                                                                          "measured"].index(Source(s).value),
                                                           default=None),
                   meaning=meaning, confirmed=confirmed, refuted=refuted,
                   per_temperature_speedup=[f"T={t:g}: {v:.2f}x" for t, v in sorted(temps.items())] or None)


UNSTEADY_CELL_S = 60.0  # seconds of arrivals per cell when the speculative step switched speeds (modes of ~2-10 s)


def unsteady_step(view: RunView, load: float) -> Finding | None:
    """bench's ``step_time_unsteady`` finding for the cell of ``view`` nearest ``load`` (same temperature)."""
    if not view.points:
        return None
    nearest = min(view.points, key=lambda p: abs(p.load - load)).load
    for f in run_findings(view.evidence.run):
        ev = f.evidence
        if f.code != "step_time_unsteady" or ev.get("load") is None or abs(float(ev["load"]) - nearest) > 1e-9:
            continue
        t = ev.get("temperature")
        if view.temperature is None or t is None or abs(float(t) - view.temperature) <= TEMPERATURE_MATCH:
            return f
    return None


def rule_noise(ctx: Context) -> Finding:
    """A verdict flips only when the interval excludes 1; else the bench command with the repeats it needs.

    A measured interval from fewer than MIN_REPEATS repeats of a cell whose speculative step switched speeds
    (bench's ``step_time_unsteady``) does not settle it either: on issue 12's H200 hosts one repeat's interval
    held the next repeat's speedup in 13 of 34 pairs (benchmarks/gpu/steadiness.py)."""
    view = ctx.primary()
    if view is None:
        return finding("noise", "Noise", "unknown", "no runs", meaning="")
    worst = None
    # the primary view, and every view at the temperature of a bucket carrying >= 10 % of the traffic
    temps = [b.temperature for b in ctx.buckets if b.share >= 0.1]
    views = [view] + [v for v in ctx.views if v is not view and v.firmness == view.firmness
                      and v.temperature is not None and v.baseline_role == view.baseline_role
                      and any(abs(v.temperature - t) <= TEMPERATURE_MATCH for t in temps)]
    for v in views:
        for load in (ctx.typical, ctx.peak):
            s = interpolate(v.points, load)
            if s is None:
                continue
            pt = min(v.points, key=lambda p: abs(p.load - load))
            unsteady = unsteady_step(v, load) if pt.repeats < MIN_REPEATS else None
            if classify(s) == "tie" or s.ci_low is None or unsteady is not None:
                n = max(repeats_needed(s.value, s.ci_low, s.ci_high, pt.repeats), MIN_REPEATS if unsteady else 1)
                if worst is None or n > worst[0] or (n == worst[0] and unsteady and not worst[4]):
                    worst = (n, load, s, v.temperature, unsteady, pt.repeats)
    if worst is None:
        return finding("noise", "Noise", "pass", "the intervals at the typical and peak load exclude 1.0",
                       source=_src(view), meaning="the verdict is not a coin flip")
    n, load, s, temp, unsteady, repeats = worst
    # a step that holds one speed for seconds needs cells many seconds long to be sampled fairly
    cmd = bench_command(ctx.workload, ctx.plan, repeats=n, out=ctx.options.bench_out,
                        duration_s=UNSTEADY_CELL_S if unsteady is not None else None)
    has_ci = s.ci_low is not None
    at_t = f" (T={temp:g})" if temp is not None else ""
    if unsteady is not None and classify(s) != "tie":
        spread = unsteady.evidence.get("spread")
        return finding("noise", "Noise", "fail",
                       f"interval {_ci_text(s)} at {load:g} {ctx.load_unit}{at_t} rests on {repeats} repeat(s) of a "
                       f"cell whose speculative step switched speeds (per-second step p90/p10 {spread}); a repeat "
                       "can land outside it", threshold=1.0, observed=s.value, source=_src(view),
                       meaning=f"settle it with {n} repeats of {UNSTEADY_CELL_S:g}-s cells (bench command under "
                       "next steps): on issue 12's H200 hosts one repeat's interval held the next repeat's speedup "
                       "in 13 of 34 pairs", repeats_needed=n, bench_command=cmd, step_spread=spread)
    return finding("noise", "Noise", "fail" if has_ci else "unknown",
                   (f"interval {_ci_text(s)} at {load:g} {ctx.load_unit}{at_t} includes 1.0" if has_ci else
                    f"no interval at {load:g} {ctx.load_unit} ({_src(view).value}, one run)"),
                   threshold=1.0, observed=s.value, source=_src(view),
                   meaning=f"settle it with {n} repeats per cell (bench command under next steps)"
                   + (": the interval is wide for so small a difference, so more requests per cell (--num-requests"
                      ", --duration) narrow it too, with the square root of their number" if n >= MAX_REPEATS else ""),
                   repeats_needed=n, bench_command=cmd)


def crossovers_disagree(a, b, tol: float) -> bool:
    """Two crossovers contradict each other within the loads both ran (a crossing the other's range excludes)."""
    if a is None or b is None or not a.loads or not b.loads:
        return False
    if a.position == "within" and b.position == "within" and a.value and b.value:
        return abs(a.value - b.value) / b.value > tol

    def contradicts(x, y) -> bool:  # x says it crosses at a load where y ran and saw no crossing, or vice versa
        if x.position == "within" and x.value is not None:
            return (y.position == "above_range" and x.value < max(y.loads)) or (
                y.position == "below_range" and x.value > min(y.loads))
        if x.position == "below_range":
            return y.position == "above_range" and min(x.loads) <= max(y.loads)
        return False
    return contradicts(a, b) or contradicts(b, a)


def rule_disagreement(ctx: Context) -> Finding:
    """Simulated vs measured beyond tolerance (crossover or speedup): a finding whose fix is calibration."""
    sims = [v for v in ctx.views if v.evidence.run.source == "simulated"]
    meas = [v for v in ctx.views if v.evidence.measured]
    if not sims or not meas:
        return finding("evidence_disagreement", "Evidence agreement", "unknown",
                       "nothing to cross-check (needs simulated and measured runs)")
    tol = ctx.options.disagreement_tolerance
    mv = meas[0]
    sv = next((v for v in sims if v.temperature == mv.temperature), sims[0])
    worst = None
    for p in mv.points:
        s = interpolate(sv.points, p.load)
        if s is None or s.value is None or p.e2e_p50.value is None:
            continue
        m = p.e2e_p50
        if m.ci_low is not None and m.ci_high is not None and m.ci_low <= s.value <= m.ci_high:
            continue  # inside the measurement's own interval: not a disagreement the data can show
        ratio = s.value / m.value
        if worst is None or abs(ratio - 1) > abs(worst[1] - 1):
            worst = (p.load, ratio, s.value, m.value)
    sc = next((c for c in sv.evidence.run.crossovers if c.temperature == sv.temperature),
              next(iter(sv.evidence.run.crossovers), None))
    mc = next((c for c in mv.evidence.run.crossovers if c.baseline_role == mv.baseline_role
               and c.temperature == mv.temperature), None)
    cross_bad = crossovers_disagree(sc, mc, tol)
    fix = calibrate_command(mv.evidence.path, ctx.mean_context)
    if (worst and abs(worst[1] - 1) > tol) or cross_bad:
        parts = []
        if worst:
            parts.append(f"at {worst[0]:g} {ctx.load_unit} simulated {worst[2]:.2f}x vs measured {worst[3]:.2f}x")
        if cross_bad:
            parts.append(f"crossover simulated: {crossover_sentence(sc)}; measured: {crossover_sentence(mc)}")
        return finding("evidence_disagreement", "Evidence agreement", "fail", "; ".join(parts),
                       threshold=tol, observed=round(worst[1], 3) if worst else None,
                       unit="simulated / measured speedup", source=Source.measured,
                       meaning=f"the measurement wins; calibrate the simulator before trusting it elsewhere: {fix}")
    return finding("evidence_disagreement", "Evidence agreement", "pass",
                   f"simulated and measured agree within {tol:.0%}" + (f" (worst {worst[1]:.2f})" if worst else ""),
                   threshold=tol, observed=round(worst[1], 3) if worst else None, source=Source.measured)


def rule_like_for_like(ctx: Context) -> Finding:
    """Arms that differ in engine settings besides speculation cannot yield ENABLE or DISABLE."""
    if not any(r.measured for r in ctx.evidence.runs):
        # simulate labels an engine mode switch that enabling speculation brings on this vLLM version: it is part
        # of what speculation costs there, so it is stated, not held against the comparison
        switch = next((f for r in ctx.evidence.runs for f in run_findings(r.run) if f.code == "not_like_for_like"),
                      None)
        if switch is not None:
            return finding("like_for_like", "Like-for-like", "unknown", switch.message, source=Source.simulated,
                           meaning="measured arms decide; `specwise bench --like-for-like` separates the switch "
                           "from speculation itself")
        return finding("like_for_like", "Like-for-like", "unknown", "no measured arms to compare")
    bad = like_for_like_diffs(ctx.evidence)
    if not bad:
        return finding("like_for_like", "Like-for-like", "pass", "the measured arms differ only in speculation "
                       "(or a like-for-like baseline was measured)", source=Source.measured)
    r, diffs = bad[0]
    return finding("like_for_like", "Like-for-like", "fail", "engine settings differ besides speculation: "
                   + "; ".join(diffs[:3]), source=Source.measured, observed=diffs,
                   meaning="the speedup mixes speculation with other engine changes: rerun with `specwise bench "
                   "--like-for-like` before enabling or disabling", run=r.path)


def rule_lossless(ctx: Context) -> Finding:
    """A failed losslessness check overrides speed: an engine defect, reported with its evidence."""
    checks = [(r, r.run.lossless) for r in ctx.evidence.runs if r.run.lossless is not None]
    failed = [(r, c) for r, c in checks if c.passed is False]
    if failed:
        r, c = failed[0]
        return finding("not_lossless", "Losslessness", "fail", f"outputs differ: {c.detail or 'check failed'}",
                       threshold="identical greedy outputs / same distribution",
                       observed=f"{c.greedy_mismatches}/{c.greedy_prompts} greedy mismatches",
                       source=Source.measured, severity="blocking",
                       meaning="engine defect: speculation must not change outputs; report it to the engine with "
                       "this run and keep speculation off", run=r.path, examples=c.greedy_examples[:3] or None,
                       worst_p_value=c.worst_p_value)
    if any(c.passed for _, c in checks):
        return finding("not_lossless", "Losslessness", "pass", "outputs match (greedy) / same distribution",
                       source=Source.measured)
    return finding("not_lossless", "Losslessness", "unknown", "no losslessness check in the evidence",
                   meaning="`specwise bench` checks it by default")


def _cell_metric_at(view: RunView, role: str, field: str, load: float) -> float | None:
    """A latency percentile of one arm at ``load`` (linear between the loads run; None beyond them)."""
    pts = sorted((c.load, getattr(c, field)) for c in view.evidence.run.cells
                 if c.role == role and c.load is not None and getattr(c, field) is not None
                 and (view.temperature is None or c.temperature == view.temperature))
    if not pts or load > pts[-1][0] * 1.0001:
        return None
    if load <= pts[0][0]:
        return pts[0][1]
    for (la, va), (lb, vb) in zip(pts, pts[1:]):
        if la <= load <= lb:
            return va + (load - la) / (lb - la) * (vb - va) if lb > la else va
    return None


def rule_slo_target(ctx: Context) -> Finding:
    """The SLO's P99 (else P50) target at the peak: met by the baseline, by speculation, by both or neither."""
    slo = ctx.workload.slo
    target, pct = (slo.p99_target, "p99") if slo.p99_target is not None else (slo.p50_target, "p50")
    if target is None or slo.metric == "throughput":
        return finding("slo_target", "SLO target", "unknown", "no latency target in the workload profile",
                       meaning="add slo.p99_target to check it at the peak")
    view = ctx.primary()
    field = f"{slo.metric}_{pct}_s"
    base = _cell_metric_at(view, "baseline", field, ctx.peak) if view else None
    spec = _cell_metric_at(view, "speculative", field, ctx.peak) if view else None
    if base is None or spec is None:
        return finding("slo_target", "SLO target", "unknown", f"no {slo.metric.upper()} {pct.upper()} at the peak "
                       "in the evidence", threshold=target, unit="s")
    ok = spec <= target
    both = "both meet it" if ok and base <= target else ("only speculation meets it" if ok else (
        "speculation misses it while the baseline meets it" if base <= target else "neither meets it"))
    return finding("slo_target", "SLO target", "pass" if ok else "fail",
                   f"{slo.metric.upper()} {pct.upper()} at the peak: speculative {spec:.3g} s, baseline {base:.3g} s "
                   f"vs target {target:g} s: {both}", threshold=target, observed=round(spec, 4), unit="s",
                   source=_src(view), baseline=round(base, 4),
                   meaning="the SLO holds with speculation on" if ok else "with speculation on, this SLO is missed "
                   "at the peak")


def rule_host_class(ctx: Context) -> Finding:
    """A calibrated simulation priced with each host class of its calibration: does the host decide?

    On the H200 of issue 12 a V1 synchronous speculative step ran 1.3-1.9x longer on some instances of the same
    machine type (the draft pass is host work); when the classes land on different sides of 1.0 at the typical
    load, the verdict cannot come from simulation: it is held at BORDERLINE until bench runs on the user's host.
    """
    name = "Host class"
    view = ctx.primary()
    variants = ctx.evidence.host_variants
    if view is None or view.firmness != "simulated_calibrated" or not any(r is view.evidence for _, r in variants):
        return finding("host_class", name, "unknown", "nothing to compare: the load evidence is not a calibrated "
                       "simulation with more than one host class")
    attr = "tpot_p50" if ctx.workload.slo.metric == "tpot" else "e2e_p50"
    values: dict[str, SpeedupCI | None] = {}
    for host_class, run in variants:
        match = [v for v in views_of([run]) if v.temperature == view.temperature
                 and v.baseline_role == view.baseline_role]
        values[host_class] = interpolate(match[0].points, ctx.typical, attr) if match else None
    commands = [run.command or "" for _, run in variants[1:]]
    if any(v is None or v.value is None for v in values.values()):
        return finding("host_class", name, "unknown", f"not every host class has a speedup at {ctx.typical:g} "
                       f"{ctx.load_unit}", commands=commands)
    text = ", ".join(f"'{h}' {v.value:.2f}x" for h, v in values.items())
    at = f"at the typical {ctx.typical:g} {ctx.load_unit} ({attr.split('_')[0].upper()} P50 speedup, simulated)"
    speedups = [round(v.value, 3) for v in values.values()]
    common = dict(threshold=1.0, observed=min(speedups), unit="lowest speedup over host classes",
                  source=Source.simulated, host_classes=list(values), speedups=speedups, commands=commands)
    if len({classify(v) for v in values.values()}) > 1:
        return finding("host_class", name, "fail", f"the host decides: {text} {at}",
                       meaning="instances of one machine type ran the synchronous speculative step 1.3-1.9x "
                               "apart, four of six H200 instances in the slow class (issue 12): bench on the host "
                               "you serve on, 3+ repeats", **common)
    return finding("host_class", name, "pass", f"every host class lands on the same side: {text} {at}", **common)

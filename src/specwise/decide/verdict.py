"""From the rule table to one verdict, its headline, how firm it is and what to do next.

Precedence (docs/decide.md lists it with the reasons): a failed losslessness check → DISABLE (engine defect);
the plan does not fit → DOES_NOT_FIT; a TTFT-bound SLO → DISABLE (speculation does not help it); arms that are
not like-for-like → at most BORDERLINE, never DISABLE; a firm loss (measured slower at the typical load, or
acceptance below break-even for most of the traffic on estimated/measured evidence) → DISABLE; then a win needs
measured evidence at the production load and temperature: uncalibrated simulation gives at most BORDERLINE, a
calibrated one at most ENABLE_WITH_GUARD; the mixed-workload diagnosis, evidence below production temperature,
a >5-point quantisation drop or an interval that includes 1.0 each hold the verdict at BORDERLINE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specwise.decide.commands import bench_command
from specwise.decide.context import Context
from specwise.decide.rules_guard import GuardChoice
from specwise.schemas.decision import FIRMNESS_ORDER, Firmness, Verdict
from specwise.schemas.findings import Finding


@dataclass
class Outcome:
    verdict: Verdict
    headline: str
    firmness: Firmness
    firmness_note: str
    next_steps: list[str] = field(default_factory=list)


def _get(rules: list[Finding], code: str) -> Finding | None:
    return next((f for f in rules if f.code == code), None)


def _failed(rules: list[Finding], code: str) -> bool:
    f = _get(rules, code)
    return f is not None and f.status == "fail"


def _firmest(ctx: Context) -> Firmness:
    levels = [v.firmness for v in ctx.views] + [b.firmness for b in ctx.buckets]
    return max(levels, key=FIRMNESS_ORDER.index) if levels else "assumed"


def _load_firmness(ctx: Context) -> Firmness:
    view = ctx.primary()
    return view.firmness if view else "assumed"


def _bucket_firmness(ctx: Context) -> Firmness:
    levels = [b.firmness for b in ctx.buckets if b.acceptance is not None]
    return min(levels, key=FIRMNESS_ORDER.index) if levels else "assumed"


def assemble(ctx: Context, rules: list[Finding], guard: GuardChoice) -> Outcome:
    steps: list[str] = []
    note = {
        "assumed": "only defaults and the workload profile: every number is an assumption",
        "estimated": "acceptance estimated offline; no load evidence",
        "simulated_roofline": "simulated with the roofline step-time defaults (uncalibrated): on a real H200 the "
        "uncalibrated simulator predicted 1.67x faster where vLLM measured 1.27x slower (issue 12)",
        "simulated_calibrated": "simulated with a step-time calibration measured on this GPU, on other hosts: "
        "speculative steps differed 1.3-1.9x between instances of the same machine type, four of six H200 "
        "instances were slow, and one instance switched speeds within seconds (issue 12; simulate "
        "--calibration-host slow prices the slow ones), so bench on yours with 3+ repeats",
        "measured": "measured by bench",
    }
    confirm = bench_command(ctx.workload, ctx.plan, out=ctx.options.bench_out)
    noise = _get(rules, "noise")
    if noise is not None and noise.evidence.get("bench_command"):
        confirm = str(noise.evidence["bench_command"])

    def out(verdict: Verdict, headline: str, firm: Firmness) -> Outcome:
        if verdict in ("ENABLE", "ENABLE_WITH_GUARD"):
            # the thresholds that would flip the verdict, watched where it runs
            steps.append("watch it in production (write this decision with -o decision.json): specwise monitor "
                         "rules --decision decision.json -o spec-decode-rules.yaml; specwise monitor watch "
                         "http://HOST:8000 --decision decision.json")
        text = note[firm]
        if firm == "measured":
            # measured, but maybe not where it counts: say so rather than lower the level
            if _failed(rules, "temperature_coverage"):
                text += ", but only below the production temperature"
            peak = _get(rules, "load_peak")
            if peak is not None and peak.status == "unknown" and "beyond" in peak.message:
                text += ", but not up to the peak load"
        return Outcome(verdict, f"{verdict.replace('_', ' ')}: {headline}", firm, text, steps)

    lossless = _get(rules, "not_lossless")
    if lossless is not None and lossless.status == "fail":
        steps.append("report the output mismatch to the engine (run directory in the Losslessness row)")
        return out("DISABLE", "the speculative arm changes outputs (engine defect); speed does not matter",
                   "measured")
    fit = _get(rules, "plan_fits")
    if fit is not None and fit.status == "fail":
        steps.append(f"re-plan: {fit.meaning}")
        alts = fit.evidence.get("alternatives")
        first = f"; would fit with {alts[0]}" if isinstance(alts, list) and alts else ""
        return out("DOES_NOT_FIT", fit.message.removeprefix("does not fit: ") + first, "estimated")
    slo = _get(rules, "slo_type")
    if slo is not None and slo.status == "fail" and ctx.workload.slo.metric == "ttft":
        ttft = slo.evidence.get("ttft_speedup")
        change = f"; TTFT P50 {1 / float(ttft) - 1:+.0%} at the peak" if isinstance(ttft, float) and ttft else ""
        return out("DISABLE", "speculation does not help this SLO (TTFT-bound)" + change,
                   "assumed" if slo.source in (None, "assumed") else _load_firmness(ctx))

    load_t, load_p = _get(rules, "load_typical"), _get(rules, "load_peak")
    lfirm = _load_firmness(ctx)
    measured_load = lfirm == "measured"
    weighted = _get(rules, "acceptance_weighted")
    share_below = float(weighted.evidence.get("share_below_break_even", 0.0)) if weighted else 0.0
    bfirm = _bucket_firmness(ctx)
    firm_acceptance = FIRMNESS_ORDER.index(bfirm) >= FIRMNESS_ORDER.index("estimated")
    not_l4l = _failed(rules, "like_for_like")

    measured_win = measured_load and load_t is not None and load_t.status == "pass"
    # firm losses (a measured win at the production load outranks acceptance evidence)
    if not not_l4l and not measured_win:
        if measured_load and load_t is not None and load_t.status == "fail":
            steps.append("keep speculation off; revisit with a cheaper proposer or a smaller k")
            return out("DISABLE", f"measured slower at the typical load ({load_t.message})", "measured")
        if firm_acceptance and share_below > 0.5 and not _failed(rules, "mixed_workload"):
            return out("DISABLE", f"acceptance below this pair's break-even for {share_below:.0%} of the traffic "
                       f"({weighted.message})", max(bfirm, lfirm, key=FIRMNESS_ORDER.index)
                       if load_p is not None and load_p.status == "fail" else bfirm)

    if slo is not None and slo.status == "fail" and ctx.workload.slo.metric == "throughput" and measured_load \
            and not not_l4l:
        return out("DISABLE", f"throughput SLO and speculation costs throughput ({slo.message})", "measured")

    holds: list[str] = []
    if slo is not None and slo.status == "fail" and ctx.workload.slo.metric == "throughput":
        holds.append(f"throughput SLO: {slo.message} ({lfirm.replace('_', ' ')})")
    kv = _get(rules, "kv_concurrency")
    if kv is not None and kv.status == "fail" and not (measured_load and load_p is not None
                                                       and load_p.status in ("pass", "fail")):
        holds.append("the peak's concurrency no longer fits beside the draft (" + kv.message.split("; ")[-1] + ")")
    if not_l4l:
        holds.append("the measured arms differ besides speculation")
        steps.append("rerun bench with --like-for-like")
    if _failed(rules, "mixed_workload"):
        mixed = _get(rules, "mixed_workload")
        holds.append("mixed workload: " + mixed.message)
        if mixed.meaning:
            steps.append(mixed.meaning)
    if _failed(rules, "temperature_coverage"):
        holds.append("evidence only below the production temperature")
    if _failed(rules, "host_class"):
        holds.append(_get(rules, "host_class").message)
    if _failed(rules, "quantisation_drop"):
        holds.append("revisit quantisation (" + _get(rules, "quantisation_drop").message + ")")
        steps.append("revisit quantisation: estimate or bench the FP8/INT8 target against the BF16 reference")
    if _failed(rules, "evidence_disagreement"):
        steps.append(_get(rules, "evidence_disagreement").meaning or "")

    win_t = load_t is not None and load_t.status == "pass"
    win_p = load_p is not None and load_p.status == "pass"
    lose_p = load_p is not None and load_p.status == "fail"
    guard_ok = _get(rules, "guard_viability")
    # a one-band schedule is fixed k: it cannot turn speculation down at the peak
    guard_viable = (guard_ok is not None and guard_ok.status == "pass" and guard.schedule is not None
                    and len({k for *_, k in guard.schedule}) > 1)

    if lfirm in ("simulated_roofline", "assumed", "estimated") or not ctx.views:
        if not any(h.startswith("mixed") for h in holds):
            said = f" ({load_p.message})" if load_p is not None and load_p.status != "unknown" else ""
            holds.append(f"not measured at the production load; {lfirm.replace('_', ' ')} evidence{said} cannot "
                         "enable on its own")
    elif lfirm == "simulated_calibrated" and not holds and win_t:
        steps.append(f"confirm on the real server: {confirm}")
        if guard_viable and guard.schedule:
            return out("ENABLE_WITH_GUARD", "calibrated simulation wins at the typical load; ship the guard "
                       "(simulated, taxed) and confirm with bench", lfirm)
        holds.append("calibrated simulation only: a plain ENABLE needs a measurement")
    if noise is not None and noise.status == "fail" and measured_load:
        holds.append("speedup " + noise.message + ": not a win yet")

    if holds:
        if confirm not in " ".join(steps):
            steps.append(f"settle it: {confirm}")
        return out("BORDERLINE", "; ".join(holds), max(lfirm, bfirm, key=FIRMNESS_ORDER.index))
    if measured_load and win_t and win_p:
        return out("ENABLE", f"measured faster at the typical and the peak load ({load_p.message})", "measured")
    if measured_load and win_t and lose_p:
        if guard_viable and guard.schedule:
            return out("ENABLE_WITH_GUARD", f"faster at the typical load, slower at the peak ({load_p.message}); "
                       "the guard turns speculation down there", "measured")
        steps.append(f"measure a guard arm: {confirm}")
        return out("BORDERLINE", f"faster at the typical load but slower at the peak ({load_p.message}) and no "
                   "viable guard", "measured")
    if measured_load and load_t is not None and load_t.status == "fail":
        return out("DISABLE", f"measured slower at the typical load ({load_t.message})", "measured")
    steps.append(f"settle it: {confirm}")
    return out("BORDERLINE", "the load evidence does not decide (" + (load_p.message if load_p else "none") + ")",
               lfirm)

"""``specwise decide``: the verdict on speculative decoding for one deployment, its evidence and the config to ship.

Pure functions over typed evidence: :func:`load_evidence` reads files and run directories,
:func:`decide` evaluates every rule (``rules_*.py``, each a small function returning a
:class:`~specwise.schemas.findings.Finding`), turns the rule table into a verdict (``verdict.py``) and fills the
ship config and monitoring thresholds (``ship.py``). Plan and simulate are reached only through ``adapter.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from specwise.decide.adapter import (
    default_profile,
    host_classes,
    plan_command,
    run_calibration,
    run_guard_points,
    run_guard_schedule,
    run_plan,
    run_simulation,
    simulation_refused,
)
from specwise.decide.context import Context, DecideOptions, build_context
from specwise.decide.evidence import (
    Evidence,
    ProfileEvidence,
    RunEvidence,
    load_evidence,
    load_workload,
    profile_from_estimate,
    run_firmness,
)
from specwise.decide.rules_acceptance import (
    rule_acceptance_agreement,
    rule_acceptance_buckets,
    rule_acceptance_weighted,
    rule_method,
    rule_p10,
    rule_quantisation,
    rule_temperature,
)
from specwise.decide.rules_fit import (
    rule_draft_vram,
    rule_fit,
    rule_kv_concurrency,
    rule_plan_vs_startup,
    rule_target_vram,
)
from specwise.decide.rules_guard import choose_guard, rule_guard
from specwise.decide.rules_load import (
    rule_acceptance_alone,
    rule_disagreement,
    rule_host_class,
    rule_like_for_like,
    rule_load_peak,
    rule_load_typical,
    rule_lossless,
    rule_mixed,
    rule_noise,
    rule_slo,
    rule_slo_target,
)
from specwise.decide.ship import monitor_thresholds, ship_config
from specwise.decide.verdict import assemble
from specwise.errors import UserError
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.decision import Decision, EvidenceRef
from specwise.schemas.estimate import EstimateResult
from specwise.schemas.findings import Finding
from specwise.schemas.plan import PlanResult
from specwise.schemas.results import RunResult
from specwise.schemas.workload import WorkloadProfile

__all__ = ["DecideOptions", "Evidence", "decide", "decide_with_evidence", "evaluate_rules", "load_evidence",
           "load_workload"]

# The rule table, in evaluation (and display) order.
RULES = (
    rule_fit, rule_draft_vram, rule_target_vram, rule_kv_concurrency, rule_plan_vs_startup,
    rule_acceptance_buckets, rule_acceptance_weighted, rule_p10, rule_temperature,
    rule_load_typical, rule_load_peak, rule_acceptance_alone, rule_slo, rule_slo_target, rule_mixed,
    rule_quantisation, rule_method, rule_like_for_like, rule_lossless, rule_guard, rule_noise, rule_disagreement,
    rule_acceptance_agreement, rule_host_class,
)


def evaluate_rules(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for rule in RULES:
        res = rule(ctx)
        out.extend(res if isinstance(res, list) else [res])
    return out


def _as_profiles(items: Iterable[AcceptanceProfile | EstimateResult | ProfileEvidence]) -> list[ProfileEvidence]:
    out = []
    for p in items:
        if isinstance(p, ProfileEvidence):
            out.append(p)
        elif isinstance(p, EstimateResult):
            out += [ProfileEvidence(profile=x, estimate=p) for x in profile_from_estimate(p)]
        else:
            out.append(ProfileEvidence(profile=p))
    return out


def _as_runs(items: Iterable[RunResult | RunEvidence]) -> list[RunEvidence]:
    out = []
    for r in items:
        if isinstance(r, RunEvidence):
            out.append(r)
        else:
            firm, cal = run_firmness(r)
            speedups, batches = run_guard_points(r)
            out.append(RunEvidence(run=r, firmness=firm, calibration=cal, guard_schedule=run_guard_schedule(r),
                                   guard_speedups=speedups, guard_batches=batches))
    return out


def decide(workload: WorkloadProfile | None, plan: PlanResult | None = None,
           profiles: Sequence[AcceptanceProfile | EstimateResult | ProfileEvidence] = (),
           runs: Sequence[RunResult | RunEvidence] = (), *, options: DecideOptions | None = None,
           evidence: Evidence | None = None) -> Decision:
    """The verdict for ``workload`` from any subset of evidence (``evidence`` adds what :func:`load_evidence` read).

    Missing plan: decide plans the workload's deployment itself (estimated). No run at all: it simulates a short
    sweep (typical/2, typical, peak, 1.5x peak) with the best acceptance evidence given, else the method's
    assumed default, and labels it simulated with the roofline defaults.
    """
    return decide_with_evidence(workload, plan, profiles, runs, options=options, evidence=evidence)[0]


def decide_with_evidence(workload: WorkloadProfile | None, plan: PlanResult | None = None,
                         profiles: Sequence[AcceptanceProfile | EstimateResult | ProfileEvidence] = (),
                         runs: Sequence[RunResult | RunEvidence] = (), *, options: DecideOptions | None = None,
                         evidence: Evidence | None = None) -> tuple[Decision, Evidence]:
    """:func:`decide` plus the evidence it used, including the plan and simulation it ran itself (for reports)."""
    from specwise import __version__

    opts = options or DecideOptions()
    ev = Evidence()
    if evidence is not None:
        ev.plans, ev.profiles, ev.runs = list(evidence.plans), list(evidence.profiles), list(evidence.runs)
        ev.workload, ev.workload_path = evidence.workload, evidence.workload_path
        ev.host_variants = list(evidence.host_variants)
    workload = workload or ev.workload
    if workload is None:
        raise UserError("decide needs a workload profile (--workload FILE; see examples/workload-profile.yaml)")
    if plan is not None:
        ev.plans.insert(0, (plan, None))
    ev.profiles += _as_profiles(profiles)
    ev.runs += _as_runs(runs)
    decided_by_us: list[EvidenceRef] = [EvidenceRef(
        kind="workload", source="assumed", firmness="assumed", description=f"workload profile '{workload.name}'",
        path=ev.workload_path if workload is ev.workload else None)]
    own_plan = not ev.plans
    if own_plan:
        try:
            ev.plans.append((run_plan(workload), None))
            decided_by_us.append(EvidenceRef(kind="plan", source="estimated", firmness="estimated",
                                             description="planned by decide from the workload's deployment",
                                             command=plan_command(workload)))
        except UserError as exc:
            if not ev.runs and not ev.profiles:
                raise  # nothing else to decide on: the profile itself is the problem
            decided_by_us.append(EvidenceRef(kind="plan", source="assumed", firmness="assumed",
                                             description=f"no plan: {exc}"))
    usable = [p for p in ev.profiles if not p.reference]
    fallback = None
    if not usable and not any(r.measured for r in ev.runs):
        fallback = ProfileEvidence(profile=default_profile(workload))
        decided_by_us.append(EvidenceRef(kind="acceptance_profile", source="assumed", firmness="assumed",
                                         description="assumed acceptance of the method (simulate's default): "
                                         + " ".join(fallback.profile.notes)[:300]))
    fits = not ev.plans or ev.plans[0][0].memory.fits
    refused = simulation_refused(workload) if not ev.runs and opts.simulate and fits else None
    if refused:
        decided_by_us.append(EvidenceRef(kind="run_result", source="simulated", firmness="simulated_roofline",
                                         description=f"not simulated by decide: {refused}; run `specwise "
                                         "simulate` with your own settings and pass its --out file"))
    if not ev.runs and opts.simulate and fits and not refused:
        prof = (usable[0].profile if usable else fallback.profile)
        sim = run_simulation(workload, prof, num_requests=opts.sim_requests, seed=opts.seed)
        ev.runs.append(RunEvidence(run=sim.run, firmness=run_firmness(sim.run)[0], calibration=run_calibration(sim.run),
                                   command=sim.command,
                                   guard_schedule=sim.guard_schedule, guard_speedups=sim.guard_speedups,
                                   guard_batches=sim.guard_batches))
        classes = host_classes(sim.run)
        if len(classes) > 1:
            ev.host_variants.append((classes[0], ev.runs[-1]))
        for host_class in classes[1:]:
            var = run_simulation(workload, prof, num_requests=opts.sim_requests, seed=opts.seed,
                                 host_class=host_class)
            ev.host_variants.append((host_class, RunEvidence(run=var.run, firmness=run_firmness(var.run)[0],
                                                             calibration=run_calibration(var.run),
                                                             command=var.command)))
    ctx = build_context(workload, ev, opts, fallback)
    rules = evaluate_rules(ctx)
    guard = choose_guard(ctx)
    outcome = assemble(ctx, rules, guard)
    reference = None
    q = next((f for f in rules if f.code == "quantisation_drop"), None)
    if q is not None and isinstance(q.evidence.get("reference_acceptance"), float):
        reference = float(q.evidence["reference_acceptance"])
    # decide's own plan is already listed with its command
    refs = decided_by_us + [r for r in ev.refs() if not (own_plan and r.kind == "plan" and r.path is None)]
    for r in refs:
        if r.kind == "run_result" and r.path is None and r.command is None:
            r.description += " (passed in-process)"
    ev.workload = workload
    return Decision(
        tool_version=__version__,
        created_at=opts.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        verdict=outcome.verdict, headline=outcome.headline, firmness=outcome.firmness,
        firmness_note=outcome.firmness_note, rules=rules, config=ship_config(ctx, outcome.verdict, guard),
        monitor=monitor_thresholds(ctx, reference), next_steps=[s for s in outcome.next_steps if s],
        evidence=refs, workload=workload,
    ), ev

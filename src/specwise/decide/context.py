"""The digest the rules read: per-bucket acceptance, speedups per load, the batch the load implies, break-even.

Built once from the workload profile and the evidence (pure; decide's own plan/simulate runs are added to the
evidence before this). Each number keeps its source and firmness so a rule can say where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specwise.decide.adapter import (
    PairCost,
    pair_cost,
    run_step_time_model,
    server_k,
    settings_differ,
    speculative_config,
)
from specwise.decide.breakeven import BreakEven, break_even
from specwise.decide.evidence import Evidence, ProfileEvidence, RunEvidence
from specwise.schemas.base import Source
from specwise.schemas.decision import FIRMNESS_ORDER, Firmness
from specwise.schemas.plan import PlanResult
from specwise.schemas.results import Comparison, SpeedupCI
from specwise.schemas.workload import WorkloadProfile

TEMPERATURE_MATCH = 0.15  # evidence within this of a bucket's temperature counts as taken at it


@dataclass(frozen=True)
class DecideOptions:
    """Tunable thresholds of the rules (defaults and their sources in docs/decide.md)."""

    median_temperature_max: float = 0.7
    quant_drop_max: float = 0.05
    draft_vram_max: float = 0.15
    target_vram_max: float = 0.70
    guard_tax_low: tuple[float, float] = (2.0, 0.066)
    guard_tax_high: tuple[float, float] = (189.0, 0.216)
    guard_cudagraph_downgrade: float = 0.14
    guard_tie: float = 0.01
    disagreement_tolerance: float = 0.25
    simulate: bool = True
    sim_requests: int = 120
    seed: int = 0
    bench_out: str = "runs/decide-confirm"
    created_at: str | None = None


@dataclass
class Bucket:
    """One temperature bucket / category of the workload with the acceptance the evidence gives it."""

    name: str
    share: float
    temperature: float
    acceptance: float | None = None  # vLLM rate, accepted / drafted
    length: float | None = None  # mean acceptance length E[L] (incl. bonus token)
    p10: float | None = None  # P10 of per-request acceptance rate
    source: Source | None = None
    firmness: Firmness = "assumed"
    origin: str = ""
    evidence_temperature: float | None = None


@dataclass
class LoadPoint:
    load: float
    e2e_p50: SpeedupCI
    e2e_p99: SpeedupCI | None
    ttft_p50: SpeedupCI | None
    tpot_p50: SpeedupCI | None
    throughput_ratio: float | None
    repeats: int
    per_repeat: list[float]


@dataclass
class RunView:
    """One run's comparisons against one baseline at one temperature, sorted by load."""

    evidence: RunEvidence
    temperature: float | None
    baseline_role: str
    points: list[LoadPoint]

    @property
    def firmness(self) -> Firmness:
        return self.evidence.firmness


@dataclass
class Context:
    workload: WorkloadProfile
    evidence: Evidence
    options: DecideOptions
    plan: PlanResult | None
    k: int
    method: str
    cost: PairCost | None
    mean_context: float
    batch_typical: float | None
    batch_peak: float | None
    batch_source: str
    be_typical: BreakEven | None
    be_peak: BreakEven | None
    buckets: list[Bucket] = field(default_factory=list)
    views: list[RunView] = field(default_factory=list)  # firmest first

    @property
    def peak(self) -> float:
        return self.workload.load.peak

    @property
    def typical(self) -> float:
        return self.workload.load.typical

    @property
    def load_unit(self) -> str:
        return "req/s" if self.workload.load.kind == "qps" else "in flight"

    def primary(self) -> RunView | None:
        """The firmest mixed-temperature (or only-temperature) view: what the load rules decide on."""
        if not self.views:
            return None
        best = FIRMNESS_ORDER.index(self.views[0].firmness)
        top = [v for v in self.views if FIRMNESS_ORDER.index(v.firmness) == best]
        # a bench arm run with a guard schedule is the guard's evidence; fixed k decides the load rules
        top = [v for v in top if not runs_guard(v.evidence)] or top
        mixed = [v for v in top if v.temperature is None]
        if mixed:
            return mixed[0]
        med = self.workload.median_temperature()
        return min(top, key=lambda v: abs((v.temperature or 0.0) - med))


def runs_guard(r: RunEvidence) -> bool:
    """The run's speculative server ran with a per-batch-size schedule."""
    return bool(speculative_config(r.run).get("num_speculative_tokens_per_batch_size"))


def interpolate(points: list[LoadPoint], load: float, attr: str = "e2e_p50") -> SpeedupCI | None:
    """Speedup (with CI) at ``load``, linear between the loads run; None above the highest load run."""
    pts = [p for p in points if getattr(p, attr) is not None and getattr(p, attr).value is not None]
    if not pts:
        return None
    if load <= pts[0].load:
        return getattr(pts[0], attr)
    for a, b in zip(pts, pts[1:]):
        if a.load <= load <= b.load:
            w = (load - a.load) / (b.load - a.load) if b.load > a.load else 0.0
            sa, sb = getattr(a, attr), getattr(b, attr)

            def mix(x: float | None, y: float | None) -> float | None:
                return None if x is None or y is None else x + w * (y - x)
            return SpeedupCI(value=mix(sa.value, sb.value), ci_low=mix(sa.ci_low, sb.ci_low),
                             ci_high=mix(sa.ci_high, sb.ci_high))
    return None


def _views(ev: Evidence) -> list[RunView]:
    return views_of(ev.runs)


def views_of(runs: list[RunEvidence]) -> list[RunView]:
    """One view per (run, temperature, baseline), firmest first."""
    out: list[RunView] = []
    for r in runs:
        groups: dict[tuple[float | None, str], list[Comparison]] = {}
        for c in r.run.comparisons:
            groups.setdefault((c.temperature, c.baseline_role), []).append(c)
        roles = {role for _, role in groups}
        for (temp, role), comps in groups.items():
            if "baseline_like_for_like" in roles and role != "baseline_like_for_like":
                continue  # the like-for-like baseline is the fair one when bench measured it
            comps = [c for c in comps if c.load is not None or c.qps is not None]  # unbounded loads have no place
            pts = [LoadPoint(load=float(c.load if c.load is not None else c.qps), e2e_p50=c.speedup_e2e_p50,
                             e2e_p99=c.speedup_e2e_p99, ttft_p50=c.speedup_ttft_p50, tpot_p50=c.speedup_tpot_p50,
                             throughput_ratio=c.throughput_ratio, repeats=c.repeats,
                             per_repeat=[x for x in c.per_repeat.get("speedup_e2e_p50", []) if x is not None])
                   for c in comps]
            out.append(RunView(evidence=r, temperature=temp, baseline_role=role,
                               points=sorted(pts, key=lambda p: p.load)))
    out.sort(key=lambda v: -FIRMNESS_ORDER.index(v.firmness))
    return out


def _batch_at(ev: Evidence, load: float, kind: str) -> tuple[float | None, str]:
    """Mean running batch of the speculative arm at ``load`` from the firmest run that recorded it."""
    if kind == "concurrency":
        return load, "closed loop: requests in flight"
    for r in sorted(ev.runs, key=lambda r: -FIRMNESS_ORDER.index(r.firmness)):
        pts = sorted((c.load, c.mean_batch_size) for c in r.run.cells
                     if c.role == "speculative" and c.load is not None and c.mean_batch_size)
        if not pts or load > pts[-1][0] * 1.0001:
            continue
        if load <= pts[0][0]:
            return pts[0][1], f"{r.run.source} mean running batch"
        for (la, ba), (lb, bb) in zip(pts, pts[1:]):
            if la <= load <= lb:
                w = (load - la) / (lb - la) if lb > la else 0.0
                return ba + w * (bb - ba), f"{r.run.source} mean running batch (interpolated)"
    return None, ""


def _littles_law_batch(cost: PairCost, qps: float, output_tokens: float, mean_context: float) -> float:
    """B = λ · O · T_base(B) (Little's law with decode time dominating), by fixed-point iteration."""
    from specwise.perf.steptime import baseline_step_time

    b = 1.0
    for _ in range(50):
        t = float(baseline_step_time(cost.target, b, mean_context))
        new = max(1.0, qps * output_tokens * t)
        if new > 4096:
            return 4096.0
        if abs(new - b) < 1e-6:
            break
        b = new
    return b


def _bucket_from_runs(b: Bucket, ev: Evidence, k: int, *, near_only: bool) -> bool:
    for r in sorted(ev.runs, key=lambda r: -FIRMNESS_ORDER.index(r.firmness)):
        if not r.measured:
            continue
        rows = [a for a in r.run.acceptance_breakdown if a.temperature is not None
                and a.acceptance_rate_p50 is not None]
        cat_rows = [a for a in rows if a.category == b.name] or [a for a in rows if a.category is None]
        cells = [c for c in r.run.cells if c.role == "speculative" and c.temperature is not None
                 and c.acceptance_rate_metrics is not None]
        cat_cells = [c for c in cells if c.category == b.name] or [c for c in cells if c.category is None]
        if near_only:
            cat_cells = [c for c in cat_cells if abs(c.temperature - b.temperature) <= TEMPERATURE_MATCH]
            cat_rows = [a for a in cat_rows if abs(a.temperature - b.temperature) <= TEMPERATURE_MATCH]
        if not cat_cells and not cat_rows:
            continue
        kk = server_k(r.run) or k
        if cat_cells:
            cell = min(cat_cells, key=lambda c: abs(c.temperature - b.temperature))
            b.acceptance = cell.acceptance_rate_metrics
            b.length = cell.mean_acceptance_length_metrics or 1.0 + kk * cell.acceptance_rate_metrics
            b.p10 = cell.acceptance_rate_per_request_p10
            b.evidence_temperature = cell.temperature
        else:
            row = min(cat_rows, key=lambda a: abs(a.temperature - b.temperature))
            b.acceptance = row.acceptance_rate_p50
            b.length = row.acceptance_length_p50 or 1.0 + kk * (row.acceptance_rate_p50 or 0.0)
            b.evidence_temperature = row.temperature
        row = min(cat_rows, key=lambda a: abs(a.temperature - b.temperature)) if cat_rows else None
        if row is not None and row.acceptance_rate_p10 is not None and b.p10 is None:
            b.p10 = row.acceptance_rate_p10
        b.source, b.firmness, b.origin = Source.measured, "measured", r.path or "measured run"
        return True
    return False


def _bucket_from_profiles(b: Bucket, profiles: list[ProfileEvidence], k: int, *, near_only: bool) -> bool:
    usable = [p for p in profiles if not p.reference]
    for p in sorted(usable, key=lambda p: p.profile.source == Source.assumed):
        cls = p.profile.lookup(b.name, b.temperature)
        if near_only and abs(cls.temperature - b.temperature) > TEMPERATURE_MATCH:
            continue
        b.length = cls.mean_acceptance_length(k)
        b.acceptance = (b.length - 1.0) / k
        b.p10 = cls.rate_p10
        b.evidence_temperature = cls.temperature
        b.source = Source(p.profile.source)
        b.firmness = "estimated" if b.source != Source.assumed else "assumed"
        b.origin = p.path or f"{p.profile.method} profile ({b.source.value})"
        return True
    return False


def build_context(workload: WorkloadProfile, ev: Evidence, options: DecideOptions,
                  default_profile: ProfileEvidence | None) -> Context:
    plan = ev.plans[0][0] if ev.plans else None
    d = workload.deployment
    k = d.k
    cost = pair_cost(workload)
    calibrated = next((run_step_time_model(r.run) for r in ev.runs if r.firmness == "simulated_calibrated"
                       and run_step_time_model(r.run) is not None), None)
    if cost is not None and calibrated is not None:
        # the break-even follows the step time measured on this GPU when a calibrated run carries it
        cost = PairCost(target=calibrated, draft=cost.draft, cost_ratio_batch1=cost.cost_ratio_batch1,
                        description=f"calibrated step-time model ({calibrated.label or 'from the run'})")
    mean_context = workload.prompt_tokens.mean + workload.output_tokens.mean / 2.0
    kind = workload.load.kind
    bt, src = _batch_at(ev, workload.load.typical, kind)
    bp, src_p = _batch_at(ev, workload.load.peak, kind)
    if (bt is None or bp is None) and cost is not None:
        lt = _littles_law_batch(cost, workload.load.typical, workload.output_tokens.mean, mean_context)
        lp = _littles_law_batch(cost, workload.load.peak, workload.output_tokens.mean, mean_context)
        bt, bp = bt or lt, bp or lp
        src = src or "Little's law on the baseline step time (estimated)"
        src_p = src_p or src
    ctx = Context(workload=workload, evidence=ev, options=options, plan=plan, k=k, method=d.method, cost=cost,
                  mean_context=mean_context, batch_typical=bt, batch_peak=bp,
                  batch_source=src_p or src, be_typical=None, be_peak=None)
    if cost is not None:
        ctx.be_typical = break_even(cost.target, cost.draft, batch=bt or 1.0, k=k, mean_context=mean_context)
        ctx.be_peak = break_even(cost.target, cost.draft, batch=bp or 1.0, k=k, mean_context=mean_context)
    profiles = list(ev.profiles) + ([default_profile] if default_profile else [])
    shares = workload.normalised_shares()
    for c in workload.categories:
        b = Bucket(name=c.name, share=shares[c.name], temperature=c.temperature)
        # at the bucket's temperature: measured, then estimated; only then evidence from another temperature
        (_bucket_from_runs(b, ev, k, near_only=True) or _bucket_from_profiles(b, profiles, k, near_only=True)
         or _bucket_from_runs(b, ev, k, near_only=False) or _bucket_from_profiles(b, profiles, k, near_only=False))
        ctx.buckets.append(b)
    ctx.views = _views(ev)
    return ctx


def like_for_like_diffs(ev: Evidence) -> list[tuple[RunEvidence, list[str]]]:
    """Measured runs whose arms differ besides speculation and that have no like-for-like comparison."""
    out = []
    for r in ev.runs:
        if not r.measured:
            continue
        diffs = settings_differ(r.run)
        has_l4l = any(c.baseline_role == "baseline_like_for_like" for c in r.run.comparisons)
        if diffs and not has_l4l:
            out.append((r, diffs))
    return out

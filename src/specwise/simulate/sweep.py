"""QPS sweep of baseline vs speculative, crossover detection and guard recommendation.

At every QPS the same requests (common random numbers) run four times: baseline (no speculation),
fixed k, the recommended guard (a ``num_speculative_tokens_per_batch_size`` schedule) and the oracle
(best k per step). The guard comes from the closed-loop model of theory-and-calibration.md §8.3: for each
running batch size B, the k that maximises S(B, k) = E[L(k)] * T_base(B) / T_SD(B, k), and k = 0 where no
k beats the baseline.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import Field

from specwise.crossover import describe_crossover, first_crossing
from specwise.perf.steptime import closed_loop_speedup
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import CellSummary, Comparison, Crossover, RunResult, SpeedupCI
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.run import Deployment, simulate_cell
from specwise.simulate.workload import ArrivalSpec, RequestClass, WorkloadSpec, generate_requests


class PointMetrics(SpecwiseModel):
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    tpot_p50_s: float | None
    tpot_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p99_s: float | None
    output_tokens_per_s: float | None
    mean_batch_size: float | None
    mean_acceptance_length: float | None = None
    mean_k: float | None = None
    saturated: bool = False
    requests_ok: int = 0
    requests_failed: int = 0

    @classmethod
    def from_summary(cls, s: CellSummary, mean_k: float | None = None) -> PointMetrics:
        return cls(ttft_p50_s=s.ttft_p50_s, ttft_p99_s=s.ttft_p99_s, tpot_p50_s=s.tpot_p50_s,
                   tpot_p99_s=s.tpot_p99_s, e2e_p50_s=s.e2e_p50_s, e2e_p99_s=s.e2e_p99_s,
                   output_tokens_per_s=s.output_tokens_per_s, mean_batch_size=s.mean_batch_size,
                   mean_acceptance_length=s.mean_acceptance_length_metrics, mean_k=mean_k,
                   saturated=s.saturated, requests_ok=s.requests_ok, requests_failed=s.requests_failed)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


class SweepPoint(SpecwiseModel):
    qps: float | None = Field(description="offered request rate (req/s); null for closed-loop points")
    concurrency: int | None = Field(None, description="closed loop: requests kept in flight")
    baseline: PointMetrics
    speculative: PointMetrics
    guard: PointMetrics | None = None
    oracle: PointMetrics | None = None
    speedup_e2e_p50: float | None = Field(description="baseline E2E p50 / speculative (fixed k) E2E p50; >1 faster")
    speedup_tpot_p50: float | None
    speedup_e2e_p99: float | None = None
    throughput_ratio: float | None = Field(None, description="speculative / baseline output tokens per second")
    guard_speedup_e2e_p50: float | None = None
    oracle_speedup_e2e_p50: float | None = None


class GuardRecommendation(SpecwiseModel):
    num_speculative_tokens_per_batch_size: list[list[int]] = Field(
        description="vLLM 0.24+ key: [[lo, hi, k], ...] over the running batch size; k=0 turns speculation off"
    )
    disable_by_batch_size: int | None = Field(
        None, description="V0/ArcticInference equivalent: first batch size where speculation should be off"
    )
    analytic_crossover_batch_size: int | None = Field(
        None, description="smallest batch where fixed k is slower than no speculation (closed-loop model, §8.3)"
    )
    mean_context_tokens: float
    speculative_config: dict = Field(default_factory=dict, description="--speculative-config JSON with the guard")
    min_speedup_fixed: float | None = None
    min_speedup_guard: float | None = None
    min_speedup_oracle: float | None = None


class KSweepPoint(SpecwiseModel):
    qps: float | None
    concurrency: int | None = None
    k: int
    speedup_e2e_p50: float | None
    speedup_tpot_p50: float | None
    e2e_p50_s: float | None
    tpot_p50_s: float | None
    saturated: bool = False


class SweepResult(SpecwiseModel):
    source: str = "simulated"
    inputs: dict = Field(default_factory=dict)
    points: list[SweepPoint]
    crossover_qps: float | None = Field(description="QPS where speedup_e2e_p50 falls below 1 (interpolated); null if none")
    crossover_concurrency: float | None = Field(
        None, description="closed-loop sweeps: concurrency where speedup_e2e_p50 falls below 1 (interpolated)"
    )
    crossover_batch_size: float | None = Field(
        None, description="mean running batch of the speculative server at the crossover QPS (interpolated)"
    )
    baseline_saturation_qps: float | None = Field(None, description="first QPS where the baseline queue grows")
    crossover: Crossover | None = Field(None, description="the crossover in the schema bench's measured "
                                        "crossovers[] use (source=simulated)")
    guard: GuardRecommendation | None = None
    k_sweep: list[KSweepPoint] = Field(default_factory=list, description="fixed-k speedups per (qps, k), if asked")
    cells: list[CellSummary] = Field(default_factory=list, description="full per-cell summaries (shared schema)")
    notes: list[str] = Field(default_factory=list)


def expected_acceptance_length(profile: AcceptanceProfile, classes: list[RequestClass], k: int) -> float:
    w = np.array([c.weight for c in classes], dtype=float)
    lengths = [profile.lookup(c.category, c.temperature).mean_acceptance_length(k) for c in classes]
    return float(np.dot(w, lengths) / w.sum())


def recommend_guard(spec: Deployment, k_max: int, classes: list[RequestClass], mean_context: float,
                    method: str) -> GuardRecommendation:
    """Best k per running batch size from the closed-loop model; merged into vLLM's range schedule."""
    assert spec.acceptance is not None
    max_b = spec.engine.max_num_seqs
    batches = np.arange(1, max_b + 1)
    best_k = np.zeros(max_b, dtype=int)
    best_s = np.ones(max_b)
    fixed_s = None
    for k in range(1, k_max + 1):
        el = expected_acceptance_length(spec.acceptance, classes, k)
        s = np.asarray(closed_loop_speedup(spec.target, spec.draft, batches, k, mean_context, el))
        if k == k_max:
            fixed_s = s
        better = s > best_s
        best_k[better] = k
        best_s[better] = s[better]
    ranges: list[list[int]] = []
    for b, k in zip(batches.tolist(), best_k.tolist()):
        if ranges and ranges[-1][2] == k:
            ranges[-1][1] = b
        else:
            ranges.append([b, b, k])
    off = np.nonzero(best_k == 0)[0]
    disable = int(batches[off[0]]) if off.size else None
    crossover = None
    if fixed_s is not None:
        below = np.nonzero(fixed_s < 1.0)[0]
        crossover = int(batches[below[0]]) if below.size else None
    cfg = {"method": method, "num_speculative_tokens": k_max, "num_speculative_tokens_per_batch_size": ranges}
    return GuardRecommendation(num_speculative_tokens_per_batch_size=ranges, disable_by_batch_size=disable,
                               analytic_crossover_batch_size=crossover, mean_context_tokens=mean_context,
                               speculative_config=cfg)


def _load(p: SweepPoint) -> float:
    return float(p.qps if p.qps is not None else p.concurrency or 0)


def _interp_crossover(points: list[SweepPoint]) -> tuple[float | None, float | None]:
    """(load, speculative mean batch) where speedup_e2e_p50 crosses 1; load is QPS or concurrency."""
    c = first_crossing([_load(p) for p in points], [p.speedup_e2e_p50 for p in points])
    if c is None:
        return None, None
    ba, bb = points[c.lower].speculative.mean_batch_size, points[c.upper].speculative.mean_batch_size
    batch = ba + c.fraction * (bb - ba) if ba is not None and bb is not None else None
    return c.load, batch


def simulated_crossover(points: list[SweepPoint], batch: float | None, temperature: float | None) -> Crossover:
    """The sweep's crossover in the schema of bench's measured one (no bracket: a simulation has no CI)."""
    closed = bool(points) and points[0].qps is None
    cross = describe_crossover([_load(p) for p in points], [p.speedup_e2e_p50 for p in points],
                               source=Source.simulated, temperature=temperature,
                               load_kind="concurrency" if closed else "qps")
    cross.batch_size = batch if cross.position == "within" else None
    return cross


def run_sweep(
    baseline: Deployment,
    speculative: Deployment,
    *,
    k: int,
    qps_list: list[float],
    workload: WorkloadSpec,
    method: str,
    seed: int = 0,
    with_guard: bool = True,
    with_oracle: bool = True,
    inputs: dict | None = None,
    k_sweep: list[int] | None = None,
    concurrency_list: list[int] | None = None,
    records_path: str | None = None,
) -> SweepResult:
    """Simulate every QPS (or closed-loop concurrency) for baseline, fixed k, guard and oracle; find the crossover."""
    mean_context = workload.prompt_len.mean + workload.output_len.mean / 2.0
    guard = recommend_guard(speculative, k, list(workload.classes), mean_context, method) if with_guard else None
    guard_policy = None
    if guard is not None:
        sched = [tuple(r) for r in guard.num_speculative_tokens_per_batch_size]
        guard_policy = SpecPolicy(kind="schedule", k=k, schedule=sched) if any(r[2] for r in sched) \
            else SpecPolicy(kind="off")
    points: list[SweepPoint] = []
    cells: list[CellSummary] = []
    ksweep: list[KSweepPoint] = []
    loads: list[tuple[float | None, int | None]] = (
        [(None, c) for c in concurrency_list] if concurrency_list else [(q, None) for q in qps_list])
    for qps, conc in loads:
        if conc is not None:
            arrival = ArrivalSpec(kind="closed", concurrency=conc)
            n = workload.num_requests or max(4 * conc, 64)
            w = workload.model_copy(update={"arrival": arrival, "num_requests": n, "duration_s": None})
        else:
            arrival = workload.arrival.model_copy(update={"qps": qps})
            w = workload.model_copy(update={"arrival": ArrivalSpec.model_validate(arrival.model_dump())})
        reqs = generate_requests(w, seed)
        keep = records_path is not None
        base = simulate_cell(baseline, reqs, SpecPolicy(kind="off"), seed=seed, qps=qps, records=keep)
        spec = simulate_cell(speculative, reqs, SpecPolicy(kind="fixed", k=k), seed=seed, qps=qps, records=keep)
        if records_path is not None:
            # written point by point, so a long sweep leaves usable results behind
            with open(records_path, "a") as f:
                for rec in (base.records or []) + (spec.records or []):
                    f.write(rec.model_dump_json() + "\n")
        cells += [base.summary, spec.summary]
        pt = SweepPoint(
            qps=qps,
            concurrency=conc,
            throughput_ratio=_ratio(spec.summary.output_tokens_per_s, base.summary.output_tokens_per_s),
            baseline=PointMetrics.from_summary(base.summary),
            speculative=PointMetrics.from_summary(spec.summary, spec.mean_k),
            speedup_e2e_p50=_ratio(base.summary.e2e_p50_s, spec.summary.e2e_p50_s),
            speedup_tpot_p50=_ratio(base.summary.tpot_p50_s, spec.summary.tpot_p50_s),
            speedup_e2e_p99=_ratio(base.summary.e2e_p99_s, spec.summary.e2e_p99_s),
        )
        if guard_policy is not None:
            g = simulate_cell(speculative, reqs, guard_policy, seed=seed, qps=qps, role="speculative")
            pt.guard = PointMetrics.from_summary(g.summary, g.mean_k)
            pt.guard_speedup_e2e_p50 = _ratio(base.summary.e2e_p50_s, g.summary.e2e_p50_s)
        if with_oracle:
            o = simulate_cell(speculative, reqs, SpecPolicy(kind="oracle", k=k), seed=seed, qps=qps)
            pt.oracle = PointMetrics.from_summary(o.summary, o.mean_k)
            pt.oracle_speedup_e2e_p50 = _ratio(base.summary.e2e_p50_s, o.summary.e2e_p50_s)
        points.append(pt)
        for kk in k_sweep or []:
            if kk == k:
                ks = spec.summary
            else:
                ks = simulate_cell(speculative, reqs, SpecPolicy(kind="fixed", k=kk), seed=seed, qps=qps).summary
            ksweep.append(KSweepPoint(qps=qps, concurrency=conc, k=kk, speedup_e2e_p50=_ratio(base.summary.e2e_p50_s, ks.e2e_p50_s),
                                      speedup_tpot_p50=_ratio(base.summary.tpot_p50_s, ks.tpot_p50_s),
                                      e2e_p50_s=ks.e2e_p50_s, tpot_p50_s=ks.tpot_p50_s, saturated=ks.saturated))
    cross_qps, cross_batch = _interp_crossover(points)
    sat = next((p.qps for p in points if p.baseline.saturated and p.qps is not None), None)
    if guard is not None:
        def worst(vals):
            vals = [v for v in vals if v is not None]
            return min(vals) if vals else None
        guard.min_speedup_fixed = worst(p.speedup_e2e_p50 for p in points)
        guard.min_speedup_guard = worst(p.guard_speedup_e2e_p50 for p in points)
        guard.min_speedup_oracle = worst(p.oracle_speedup_e2e_p50 for p in points)
    notes = []
    if points and points[0].speedup_e2e_p50 is not None and points[0].speedup_e2e_p50 < 1.0:
        notes.append("speculation is slower already at the lowest load simulated: the crossover is below the range")
    temps = {c.temperature for c in workload.classes}
    crossover = simulated_crossover(points, cross_batch, next(iter(temps)) if len(temps) == 1 else None)
    cross_conc = None
    if concurrency_list:
        cross_qps, cross_conc = None, cross_qps
    return SweepResult(inputs=inputs or {}, points=points, crossover_qps=cross_qps,
                       crossover_concurrency=cross_conc, crossover_batch_size=cross_batch, crossover=crossover,
                       baseline_saturation_qps=sat, guard=guard, k_sweep=ksweep, cells=cells, notes=notes)


def to_run_result(result: SweepResult) -> RunResult:
    """The sweep in the shared run schema (source=simulated): baseline and fixed-k cells + comparisons."""
    from specwise import __version__

    comparisons = []
    for p in result.points:
        def ci(a: float | None, b: float | None) -> SpeedupCI:
            return SpeedupCI(value=_ratio(a, b))

        b, s = p.baseline, p.speculative
        comparisons.append(Comparison(
            qps=p.qps, temperature=result.crossover.temperature if result.crossover else None,
            speedup_tpot_p50=ci(b.tpot_p50_s, s.tpot_p50_s), speedup_tpot_p99=ci(b.tpot_p99_s, s.tpot_p99_s),
            speedup_e2e_p50=ci(b.e2e_p50_s, s.e2e_p50_s), speedup_e2e_p99=ci(b.e2e_p99_s, s.e2e_p99_s),
            speedup_ttft_p50=ci(b.ttft_p50_s, s.ttft_p50_s),
            throughput_ratio=p.throughput_ratio,
        ))
    findings = []
    if result.crossover_qps is not None:
        findings.append(f"simulated crossover: fixed-k speculation is slower above ~{result.crossover_qps:.2f} req/s")
    if result.guard is not None:
        findings.append("recommended guard: num_speculative_tokens_per_batch_size="
                        + json.dumps(result.guard.num_speculative_tokens_per_batch_size))
    return RunResult(source="simulated", tool_version=__version__, config=result.inputs,
                     servers={"baseline": result.inputs.get("baseline", {}),
                              "speculative": result.inputs.get("speculative", {})},
                     cells=result.cells, comparisons=comparisons, findings=findings,
                     crossovers=[result.crossover] if result.crossover is not None else [])

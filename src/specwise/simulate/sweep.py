"""Load sweep of baseline vs speculative, crossover detection and guard recommendation -> ``RunResult``.

At every load (open-loop QPS or closed-loop concurrency) the same requests (common random numbers) run
four times: baseline (no speculation), fixed k, the recommended guard (a
``num_speculative_tokens_per_batch_size`` schedule) and the oracle (best k per step). Baseline and fixed-k
cells and their comparisons are the shared schema's ``cells`` / ``comparisons`` (what ``bench`` measures);
the guard, the oracle and the k sweep go to ``RunResult.simulation``. The guard comes from the closed-loop
model of docs/reference/theory-and-calibration.md §8.3: for each running batch size B, the k that maximises
S(B, k) = E[L(k)] * T_base(B) / T_SD(B, k), and k = 0 where no k beats the baseline.
"""

from __future__ import annotations

import numpy as np

from specwise import __version__
from specwise.comparisons import ArmRun, compare_arms, ratio
from specwise.crossover import crossovers_from_comparisons, first_crossing
from specwise.perf.steptime import closed_loop_speedup
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.results import (
    CellSummary,
    Comparison,
    GuardRecommendation,
    LoadKind,
    PolicyPoint,
    RunResult,
    SimulationBlock,
)
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.run import Deployment, SimRun, simulate_cell
from specwise.simulate.workload import ArrivalSpec, RequestClass, WorkloadSpec, generate_requests




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


def point_comparison(base: CellSummary, spec: CellSummary) -> Comparison:
    """Baseline vs speculative at one load from the two summaries (a simulation has no CI): the definition
    bench uses too (:func:`specwise.comparisons.compare_arms`)."""
    return compare_arms([ArmRun(base)], [ArmRun(spec)])


def policy_point(base: CellSummary, run: SimRun, policy: str, k: int) -> PolicyPoint:
    s = run.summary
    return PolicyPoint(qps=s.qps, load_kind=s.load_kind, load=s.load, policy=policy, k=k, mean_k=run.mean_k,
                       e2e_p50_s=s.e2e_p50_s, e2e_p99_s=s.e2e_p99_s, tpot_p50_s=s.tpot_p50_s,
                       output_tokens_per_s=s.output_tokens_per_s, mean_batch_size=s.mean_batch_size,
                       mean_acceptance_length=s.mean_acceptance_length_metrics,
                       speedup_e2e_p50=ratio(base.e2e_p50_s, s.e2e_p50_s),
                       speedup_tpot_p50=ratio(base.tpot_p50_s, s.tpot_p50_s), saturated=s.saturated)


def crossover_batch_size(comparisons: list[Comparison], spec_cells: list[CellSummary]) -> float | None:
    """Mean running batch of the speculative server where the E2E P50 speedup crosses 1 (interpolated)."""
    c = first_crossing([x.load or 0.0 for x in comparisons], [x.speedup_e2e_p50.value for x in comparisons])
    if c is None:
        return None
    ba, bb = spec_cells[c.lower].mean_batch_size, spec_cells[c.upper].mean_batch_size
    return ba + c.fraction * (bb - ba) if ba is not None and bb is not None else None


def _on_load(run: SimRun, kind: LoadKind, load: float) -> SimRun:
    run.summary.load_kind, run.summary.load = kind, load
    return run


def run_sweep(
    baseline: Deployment,
    speculative: Deployment,
    *,
    k: int,
    qps_list: list[float] | None = None,
    workload: WorkloadSpec,
    method: str,
    seed: int = 0,
    with_guard: bool = True,
    with_oracle: bool = True,
    k_sweep: list[int] | None = None,
    concurrency_list: list[int] | None = None,
    records_path: str | None = None,
) -> RunResult:
    """Simulate every QPS (or closed-loop concurrency) for baseline, fixed k, guard and oracle; find the crossover.

    The result's ``inputs`` and ``servers`` are left for the caller (:func:`specwise.simulate.stage.run`).
    """
    mean_context = workload.prompt_len.mean + workload.output_len.mean / 2.0
    guard = recommend_guard(speculative, k, list(workload.classes), mean_context, method) if with_guard else None
    guard_policy = None
    if guard is not None:
        sched = [tuple(r) for r in guard.num_speculative_tokens_per_batch_size]
        guard_policy = SpecPolicy(kind="schedule", k=k, schedule=sched) if any(r[2] for r in sched) \
            else SpecPolicy(kind="off")
    kind: LoadKind = "concurrency" if concurrency_list else "qps"
    cells: list[CellSummary] = []
    comparisons: list[Comparison] = []
    spec_cells: list[CellSummary] = []
    policies: list[PolicyPoint] = []
    ksweep: list[PolicyPoint] = []
    saturation: float | None = None
    for load in (concurrency_list or qps_list or []):
        qps = None if concurrency_list else float(load)
        if concurrency_list:
            n = workload.num_requests or max(4 * int(load), 64)
            w = workload.model_copy(update={"arrival": ArrivalSpec(kind="closed", concurrency=int(load)),
                                            "num_requests": n, "duration_s": None})
        else:
            arrival = workload.arrival.model_copy(update={"qps": qps})
            w = workload.model_copy(update={"arrival": ArrivalSpec.model_validate(arrival.model_dump())})
        reqs = generate_requests(w, seed)
        keep = records_path is not None

        def cell(policy: SpecPolicy, dep: Deployment = speculative, **kw) -> SimRun:  # noqa: ANN003
            return _on_load(simulate_cell(dep, reqs, policy, seed=seed, qps=qps, **kw), kind, float(load))

        base = cell(SpecPolicy(kind="off"), baseline, records=keep)
        spec = cell(SpecPolicy(kind="fixed", k=k), records=keep)
        if records_path is not None:
            # written load by load, so a long sweep leaves usable results behind
            with open(records_path, "a") as f:
                for rec in (base.records or []) + (spec.records or []):
                    f.write(rec.model_dump_json() + "\n")
        cells += [base.summary, spec.summary]
        spec_cells.append(spec.summary)
        comparisons.append(point_comparison(base.summary, spec.summary))
        if base.summary.saturated and saturation is None:
            saturation = float(load)
        policies.append(policy_point(base.summary, spec, "fixed", k))
        if guard_policy is not None:
            policies.append(policy_point(base.summary, cell(guard_policy, role="speculative"), "guard", k))
        if with_oracle:
            policies.append(policy_point(base.summary, cell(SpecPolicy(kind="oracle", k=k)), "oracle", k))
        for kk in k_sweep or []:
            run = spec if kk == k else cell(SpecPolicy(kind="fixed", k=kk))
            ksweep.append(policy_point(base.summary, run, "fixed", kk))
    if guard is not None:
        def worst(name: str) -> float | None:
            vals = [p.speedup_e2e_p50 for p in policies if p.policy == name and p.speedup_e2e_p50 is not None]
            return min(vals) if vals else None
        guard.min_speedup_fixed, guard.min_speedup_guard = worst("fixed"), worst("guard")
        guard.min_speedup_oracle = worst("oracle")
    crossovers = crossovers_from_comparisons(comparisons, Source.simulated)
    batch = crossover_batch_size(comparisons, spec_cells)
    for cross in crossovers:
        cross.batch_size = batch if cross.position == "within" else None
    sim = SimulationBlock(method=method, k=k, policies=policies, k_sweep=ksweep, guard=guard,
                          analytic_crossover_batch_size=guard.analytic_crossover_batch_size if guard else None,
                          crossover_batch_size=batch, baseline_saturation_load=saturation)
    return RunResult(source=Source.simulated, tool_version=__version__, cells=cells, comparisons=comparisons,
                     crossovers=crossovers, simulation=sim)

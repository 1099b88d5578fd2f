"""Run one simulated cell (deployment x workload x policy) and summarise it in the shared result schema.

Summaries are computed from the engine's arrays (no per-request objects), with the same definitions as
:func:`specwise.metrics.definitions.summarize_cell`; :class:`~specwise.schemas.results.RequestRecord` objects
are built only when asked (``records=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from specwise.metrics.definitions import achieved_completion_rate, detect_saturation
from specwise.perf.steptime import DraftCost, StepTimeModel
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import CellSummary, RequestRecord, Role
from specwise.simulate.engine import ABORTED, DONE, Engine, EngineConfig
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.workload import RequestArrays, WorkloadSpec, generate_requests


class Deployment(SpecwiseModel):
    """What is simulated: the target's step model, the draft cost, scheduler limits, acceptance."""

    target: StepTimeModel
    draft: DraftCost = Field(default_factory=lambda: DraftCost(method="none"))
    engine: EngineConfig
    acceptance: AcceptanceProfile | None = None


@dataclass
class SimRun:
    summary: CellSummary
    engine: Engine
    records: list[RequestRecord] | None = None
    k_steps: dict[int, int] = field(default_factory=dict)

    @property
    def mean_k(self) -> float:
        steps = sum(self.k_steps.values())
        return sum(k * n for k, n in self.k_steps.items()) / steps if steps else 0.0


def acceptance_classes(profile: AcceptanceProfile | None, requests: RequestArrays) -> list[AcceptanceClass]:
    """The acceptance class of each workload class (profile lookup by category and temperature)."""
    if profile is None:
        return []
    return [profile.lookup(c.category, c.temperature) for c in requests.classes]


def simulate_cell(
    deployment: Deployment,
    workload: WorkloadSpec | RequestArrays,
    policy: SpecPolicy,
    *,
    role: Role | None = None,
    seed: int = 0,
    records: bool = False,
    qps: float | None = None,
    fast_forward: bool = True,
) -> SimRun:
    """Simulate ``workload`` on ``deployment`` under ``policy``; requests are drawn with ``seed``."""
    reqs = workload if isinstance(workload, RequestArrays) else generate_requests(workload, seed)
    if qps is None and isinstance(workload, WorkloadSpec):
        qps = workload.arrival.qps
    if policy.max_k > 0 and deployment.acceptance is None:
        raise ValueError("a speculative policy needs an acceptance profile")
    eng = Engine(deployment.target, deployment.draft, policy, deployment.engine,
                 acceptance_classes(deployment.acceptance, reqs) if policy.max_k > 0 else [],
                 seed=seed + 7919, record_chunks=records, fast_forward=fast_forward)
    eng.add_requests(reqs.arrival_s, reqs.prompt_tokens, reqs.output_tokens, reqs.class_index,
                     closed_loop_concurrency=reqs.closed_loop_concurrency)
    until = None
    if reqs.closed_loop_concurrency is not None:
        until = None  # closed loop runs until every request finished
    eng.run(until_s=until)
    role = role or ("speculative" if policy.max_k > 0 else "baseline")
    temps = {c.temperature for c in reqs.classes}
    summary = summarize_engine(eng, role=role, qps=qps, k=policy.max_k or None,
                               temperature=next(iter(temps)) if len(temps) == 1 else None)
    recs = build_records(eng, role=role, qps=qps, reqs=reqs) if records else None
    return SimRun(summary=summary, engine=eng, records=recs, k_steps=dict(eng.k_steps))


def _pct(arr: np.ndarray, q: float) -> float | None:
    arr = arr[np.isfinite(arr)]
    return float(np.percentile(arr, q)) if arr.size else None


def summarize_engine(eng: Engine, *, role: Role, qps: float | None, k: int | None = None,
                     temperature: float | None = None, category: str | None = None) -> CellSummary:
    n = eng.n
    status = eng.status[:n]
    arrival = eng.arrival[:n]
    arrived = np.isfinite(arrival)
    done = status == DONE
    ttft = (eng.first_t[:n] - arrival)[done]
    e2e = (eng.finish_t[:n] - arrival)[done]
    out = eng.generated[:n][done]
    multi = out >= 2
    tpot = (e2e[multi] - ttft[multi]) / (out[multi] - 1)
    gaps, gap_tok = eng.itl_arrays()
    per_token = gaps / np.where(gap_tok > 0, gap_tok, 1)
    failed_mask = arrived & ~done
    errors: dict[str, int] = {}
    if failed_mask.any():
        too_long = int(np.sum(failed_mask & (status == ABORTED) & np.isinf(eng.finish_t[:n])))
        if too_long:
            errors["too_long_for_kv_cache"] = too_long
        aborted = int(np.sum(failed_mask & (status == ABORTED))) - too_long
        if aborted:
            errors["aborted"] = aborted
        unfinished = int(np.sum(failed_mask & (status != ABORTED)))
        if unfinished:
            errors["unfinished"] = unfinished
    start = float(arrival[arrived].min()) if arrived.any() else 0.0
    end = float(eng.finish_t[:n][done].max()) if done.any() else eng.now
    duration = max(end - start, 1e-9)
    total_tokens = int(out.sum())
    chunks = int((eng.chunks if eng.kmax > 0 else eng.generated)[:n][done].sum())
    rates = lengths = np.empty(0)
    if role == "speculative":
        drafted = done & (eng.drafts[:n] > 0)
        rates = eng.accepted[:n][drafted] / eng.draft_tokens[:n][drafted]
        lengths = 1.0 + eng.accepted[:n][drafted] / eng.drafts[:n][drafted]
    # one definition with bench (specwise.metrics.definitions): TTFT growing with arrival time,
    # completions short of the offered rate, or requests left unfinished
    sat = detect_saturation(arrival[done], ttft, offered_rate=qps,
                            achieved_rate=achieved_completion_rate(arrival[done], e2e),
                            unfinished=int(errors.get("unfinished", 0)))
    saturated = sat.saturated
    spec_metrics = {}
    if eng.spec_drafts:
        spec_metrics = dict(
            acceptance_rate_metrics=eng.spec_accepted / eng.spec_draft_tokens,
            mean_acceptance_length_metrics=1.0 + eng.spec_accepted / eng.spec_drafts,
            per_position_acceptance_metrics=[float(x) / eng.spec_drafts
                                             for x in eng.spec_accepted_per_pos[: eng.kmax]],
        )
    return CellSummary(
        role=role,
        source=Source.simulated,
        qps=qps,
        temperature=temperature,
        category=category,
        duration_s=duration,
        requests_ok=int(done.sum()),
        requests_failed=int(failed_mask.sum()),
        ttft_p50_s=_pct(ttft, 50),
        ttft_p95_s=_pct(ttft, 95),
        ttft_p99_s=_pct(ttft, 99),
        tpot_p50_s=_pct(tpot, 50),
        tpot_p95_s=_pct(tpot, 95),
        tpot_p99_s=_pct(tpot, 99),
        itl_per_token_p50_s=_pct(per_token, 50),
        itl_per_token_p99_s=_pct(per_token, 99),
        itl_per_chunk_p50_s=_pct(gaps, 50),
        itl_per_chunk_p99_s=_pct(gaps, 99),
        e2e_p50_s=_pct(e2e, 50),
        e2e_p95_s=_pct(e2e, 95),
        e2e_p99_s=_pct(e2e, 99),
        output_tokens_per_s=total_tokens / duration,
        requests_per_s=int(done.sum()) / duration,
        mean_tokens_per_chunk=(total_tokens / chunks) if chunks else None,
        acceptance_rate_per_request_p10=_pct(rates, 10),
        acceptance_rate_per_request_p50=_pct(rates, 50),
        acceptance_rate_per_request_p90=_pct(rates, 90),
        acceptance_length_per_request_p50=_pct(lengths, 50),
        acceptance_source_per_request="engine" if rates.size else None,
        mean_batch_size=eng.batch_time / duration,
        saturated=saturated,
        errors_by_kind=errors,
        **spec_metrics,
    )


def build_records(eng: Engine, *, role: Role, qps: float | None, reqs: RequestArrays | None = None) -> list[RequestRecord]:
    """Per-request records in the shared schema (needs an engine created with ``record_chunks=True``)."""
    if not eng.record_chunks:
        raise ValueError("the engine did not record chunks; simulate with records=True")
    out: list[RequestRecord] = []
    for rid in range(eng.n):
        arrival = float(eng.arrival[rid])
        if not np.isfinite(arrival):
            continue
        ok = eng.status[rid] == DONE
        cls = reqs.classes[int(reqs.class_index[rid])] if reqs is not None else None
        offsets = [t - arrival for t in eng.chunk_t[rid]]
        out.append(RequestRecord.model_construct(
            request_id=f"sim-{rid}", role=role, qps=qps,
            temperature=cls.temperature if cls else 0.0, category=cls.category if cls else None, repeat=0,
            scheduled_s=arrival, sent_s=arrival, prompt_tokens=int(eng.prompt[rid]),
            output_tokens=int(eng.generated[rid]),
            ttft_s=offsets[0] if offsets else None, e2e_s=offsets[-1] if (offsets and ok) else None,
            chunk_offsets_s=offsets, chunk_tokens=list(eng.chunk_n[rid]), token_count_method="engine",
            chunk_estimate_safe=True, arrival_stamps="simulated",
            accepted_per_step=list(eng.step_acc[rid]) if role == "speculative" else None,
            server_spec=None, finish_reason="length" if ok else None,
            error=None if ok else "not finished", error_kind=None if ok else "unfinished",
        ))
    return out

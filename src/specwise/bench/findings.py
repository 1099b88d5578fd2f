"""What a bench run's evidence says beyond its numbers, as small rules that each return :class:`Finding` s.

Every rule reads a :class:`FindingContext` (the run's config, servers, cells, losslessness check) and
returns zero or more findings with a stable ``code``, a severity (``blocking``: the comparison cannot be
trusted as it stands; ``warning``: a number is biased or thin; ``info``: context), the message users
read and the values it rests on. :func:`bench_findings` runs them in report order (a losslessness
failure heads the list). decide reads the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from specwise.bench.config import BenchConfig
from specwise.bench.http_stream import kernel_stamps_for
from specwise.bench.servers import ServerInfo, compare_settings, like_for_like_baseline_cmd
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding, Severity
from specwise.schemas.results import CellSummary, LosslessCheck

__all__ = ["BUNCHED_CHUNKS_WARN_SHARE", "FindingContext", "P50_MIN_REQUESTS", "P99_MIN_REQUESTS", "RULES",
           "UNSTEADY_OVER_BASELINE", "UNSTEADY_STEP_SPREAD", "bench_findings"]

LIKE_FOR_LIKE = "baseline_like_for_like"
ROLE_ORDER = ("baseline", LIKE_FOR_LIKE, "speculative")
P99_MIN_REQUESTS = 100  # below this a P99 is an extrapolation from the top one or two requests
P50_MIN_REQUESTS = 10
# A step_window_spread (p90/p10 of per-second step times) at or above this, and this much above its baseline's at the
# same load, means the speculative server switched between step speeds within the cell. At 2-48 req/s the
# baselines of issue 12's H200 rounds stayed at 1.01-1.17 and the host-bound draft_model servers reached 1.03-2.47
# (docs/measurement.md).
UNSTEADY_STEP_SPREAD = 1.25
UNSTEADY_OVER_BASELINE = 1.15
# Above this share of zero gaps, per-chunk timing no longer describes engine steps (a few same-read pairs are
# normal when two steps land within one scheduler tick of the client).
BUNCHED_CHUNKS_WARN_SHARE = 0.2


@dataclass
class FindingContext:
    """The evidence the rules read."""

    cfg: BenchConfig
    pooled: list[CellSummary]
    k: int | None
    servers: dict[str, ServerInfo] = field(default_factory=dict)
    cells: list = field(default_factory=list)  # bench.cell.CellRun, every repeat
    lossless: LosslessCheck | None = None
    complete: bool = True
    synthetic_workload: bool = False


def _f(code: str, severity: Severity, message: str, **evidence: object) -> Finding:
    return Finding(code=code, severity=severity, message=message, source=Source.measured,
                   evidence={k: v for k, v in evidence.items() if v is not None})  # type: ignore[misc]


def _t(t: float | None) -> str:
    return "mix" if t is None else f"{t:g}"


def _label(s: CellSummary) -> str:
    return f"{s.role} qps={s.qps if s.qps is not None else 'closed-loop'} T={_t(s.temperature)}"


def not_lossless(c: FindingContext) -> list[Finding]:
    if c.lossless is None or c.lossless.passed is not False:
        return []
    return [_f("not_lossless", "blocking", "NOT LOSSLESS: the speculative arm changes outputs ("
               + c.lossless.detail + "). A speed-up that changes answers is not a speed-up.",
               greedy_mismatches=c.lossless.greedy_mismatches, worst_p_value=c.lossless.worst_p_value)]


def engine_settings(c: FindingContext) -> list[Finding]:
    base, spec = c.servers.get("baseline"), c.servers.get("speculative")
    out: list[Finding] = []
    if base and spec:
        diffs = compare_settings(base, spec, include_kv=False)
        kv_diffs = [d for d in compare_settings(base, spec) if d not in diffs]
        if diffs:
            out.append(_f("engine_settings_differ", "blocking", "ENGINE SETTINGS DIFFER besides speculation, so "
                          "the comparison is not like-for-like: " + "; ".join(diffs), differences=diffs))
        if kv_diffs:
            out.append(_f("kv_capacity_differs", "info", "KV cache capacity differs (" + "; ".join(kv_diffs)
                          + "): expected when the draft takes memory, and part of speculation's cost at high "
                          "load; the like-for-like baseline removes it", differences=kv_diffs))
        if (diffs or kv_diffs) and c.cfg.baseline_cmd:
            cmd = like_for_like_baseline_cmd(c.cfg.baseline_cmd, spec)
            if cmd:
                out.append(_f("like_for_like_command", "info", "like-for-like baseline (the speculative arm's "
                              f"other settings forced): {cmd}", command=cmd))
    like = c.servers.get(LIKE_FOR_LIKE)
    if like and spec:
        still = compare_settings(like, spec)
        out.append(_f("like_for_like_measured", "info", "like-for-like baseline measured (comparisons with "
                      "baseline_role=baseline_like_for_like)"
                      + (": settings still differing: " + "; ".join(still) if still else ""), differences=still))
    return out


def startup_memory(c: FindingContext) -> list[Finding]:
    out = []
    for role in ROLE_ORDER:
        check = c.servers[role].memory_check if role in c.servers else None
        if check is not None and check.deviations:
            out.append(_f("startup_memory_differs", "warning", f"STARTUP MEMORY DIFFERS FROM THE PLAN ({role}, "
                          f"beyond ±{check.tolerance:.0%}): " + "; ".join(check.deviations) + ". The plan's "
                          "accounting does not describe this server (check GPU, dtype, quantisation, draft); its "
                          "KV capacity numbers are not to be trusted", role=role, deviations=check.deviations,
                          tolerance=check.tolerance))
    return out


def synthetic_acceptance(c: FindingContext) -> list[Finding]:
    spec = c.servers.get("speculative")
    if not (spec and spec.synthetic_acceptance):
        return []
    return [_f("synthetic_acceptance", "warning", "speculative arm uses rejection_sample_method=synthetic: its "
               "acceptance is injected, not measured, and does not transfer to real traffic")]


def event_loop_stamps(c: FindingContext) -> list[Finding]:
    loop_stamped = [role for role, url in (("baseline", c.cfg.baseline_url), ("speculative", c.cfg.speculative_url))
                    if url and not kernel_stamps_for(url)]
    if not loop_stamped:
        return []
    return [_f("event_loop_stamps", "info", f"{' and '.join(loop_stamped)}: chunk arrival times are event-loop "
               "stamps (https, or no kernel receive timestamps on this OS), not the kernel's: with hundreds of "
               "concurrent streams their P99 error reaches several ms (benchmarks/client_accuracy.py); for "
               "timing-critical cells use the server's plain-http address or more --client-workers",
               roles=loop_stamped)]


def workload_realism(c: FindingContext) -> list[Finding]:
    out = []
    if c.cfg.ignore_eos:
        out.append(_f("ignore_eos", "warning", "ignore_eos is on: outputs run past their natural end, acceptance "
                      "is not representative"))
    if c.synthetic_workload:
        out.append(_f("synthetic_prompts", "warning", "synthetic/random prompts: acceptance rates are meaningless "
                      "for a deployment decision"))
    temps = [t for t in c.cfg.temperatures if t is not None]
    prod = c.cfg.production_temperature
    if prod and temps and max(temps) < prod:
        out.append(_f("below_production_temperature", "warning", f"all measured temperatures "
                      f"({', '.join(f'{t:g}' for t in temps)}) are below the declared production temperature "
                      f"{prod:g}: acceptance falls with temperature, so these results overstate the benefit",
                      temperatures=temps, production_temperature=prod))
    return out


def sample_sizes(c: FindingContext) -> list[Finding]:
    out = []
    few_p50 = [s for s in c.pooled if s.requests_ok < P50_MIN_REQUESTS]
    few_p99 = [s for s in c.pooled if P50_MIN_REQUESTS <= s.requests_ok < P99_MIN_REQUESTS]
    if few_p50:
        least = min(s.requests_ok for s in few_p50)
        out.append(_f("few_requests_for_p50", "warning", f"{len(few_p50)} cells have fewer than "
                      f"{P50_MIN_REQUESTS} successful requests (min {least}): even their P50 is unreliable",
                      cells=len(few_p50), min_requests=least, threshold=P50_MIN_REQUESTS))
    if few_p99:
        least = min(s.requests_ok for s in few_p99)
        out.append(_f("few_requests_for_p99", "info", f"{len(few_p99)} cells have fewer than {P99_MIN_REQUESTS} "
                      f"successful requests (min {least}): their P99 is the top one or two requests, not a tail "
                      "estimate; raise --num-requests", cells=len(few_p99), min_requests=least,
                      threshold=P99_MIN_REQUESTS))
    return out


def per_cell(c: FindingContext) -> list[Finding]:
    out = []
    for s in c.pooled:
        label = _label(s)
        total = s.requests_ok + s.requests_failed
        if s.requests_failed and total:
            kinds = ", ".join(f"{k_} x{n}" for k_, n in sorted(s.errors_by_kind.items()))
            out.append(_f("requests_failed", "warning", f"{label}: {s.requests_failed}/{total} requests failed "
                          f"({kinds})", cell=label, failed=s.requests_failed, sent=total,
                          error_kinds=sorted(s.errors_by_kind)))
        if s.saturated:
            out.append(_f("saturated", "info", f"{label}: server saturated (queue/TTFT growing); latencies here "
                          "reflect queueing", cell=label))
        if s.metrics_note:
            out.append(_f("metrics_note", "info", f"{label}: {s.metrics_note}", cell=label))
        if s.chunks_same_read_share is not None and s.chunks_same_read_share > BUNCHED_CHUNKS_WARN_SHARE:
            out.append(_f("bunched_chunks", "warning", f"{label}: {100 * s.chunks_same_read_share:.0f}% of chunks "
                          "arrived in the same socket read as the chunk before them (the server's API process "
                          "bunched its output, e.g. --stream-interval or a saturated API server, or this client "
                          "was starved of CPU: try --client-workers); ITL and TPOT understate the engine's step "
                          "time here", cell=label, share=s.chunks_same_read_share,
                          threshold=BUNCHED_CHUNKS_WARN_SHARE))
    for cell in c.cells:
        if cell.aborted:
            out.append(_f("cell_aborted", "warning", f"{cell.cell_id}: stopped early, {cell.aborted}",
                          cell=cell.cell_id))
        if cell.metrics and cell.metrics.counter_reset:
            out.append(_f("counter_reset", "warning", f"{cell.cell_id}: /metrics counters went down (server "
                          "restart): deltas are partial", cell=cell.cell_id))
        for note in cell.notes:
            out.append(_f("cell_note", "info", f"{cell.cell_id}: {note}", cell=cell.cell_id))
        for what in cell.unsettled:  # the cell was stored without waiting for it: its figures may lack a part
            out.append(_f("cell_unsettled", "warning", f"{cell.cell_id}: {what}", cell=cell.cell_id))
    return out


def step_steadiness(c: FindingContext) -> list[Finding]:
    """The speculative server's step time switched between speeds within a cell (and its baseline's did not)."""
    out = []
    baselines = {(s.qps, s.load, s.temperature): s for s in c.pooled if s.role == "baseline"}
    for s in c.pooled:
        spread = s.step_window_spread
        if s.role != "speculative" or s.saturated or spread is None or spread < UNSTEADY_STEP_SPREAD:
            continue
        base = baselines.get((s.qps, s.load, s.temperature))
        base_spread = base.step_window_spread if base is not None else None
        if base_spread is not None and spread < UNSTEADY_OVER_BASELINE * base_spread:
            continue  # the baseline swung as much: the load moved the batch, not the server's speed
        against = f"; baseline {base_spread:.2f}" if base_spread is not None else ""
        out.append(_f("step_time_unsteady", "warning", f"{_label(s)}: the server's step time switched between "
                      f"speeds during the cell (median chunk gap per second {1e3 * s.step_window_p10_s:.1f}-"
                      f"{1e3 * s.step_window_p90_s:.1f} ms over {s.step_windows} s, p90/p10 {spread:.2f}{against}). "
                      "Its percentiles depend on which speeds the cell caught, and a repeat can land elsewhere: "
                      "run --repeats 3 or more with a longer --duration and read the spread across repeats (the "
                      "intervals resample repeats and 2-s blocks). On issue 12's H200 hosts this was the host CPU "
                      "under vLLM 0.26's synchronous draft_model step (1.5-2x swings the guest OS does not see)",
                      cell=_label(s), load=s.load if s.load is not None else s.qps, temperature=s.temperature,
                      spread=round(spread, 3),
                      baseline_spread=round(base_spread, 3) if base_spread is not None else None,
                      step_p10_s=s.step_window_p10_s, step_p90_s=s.step_window_p90_s, windows=s.step_windows,
                      repeats=s.repeats, threshold=UNSTEADY_STEP_SPREAD))
    return out


def acceptance_quality(c: FindingContext) -> list[Finding]:
    out = []
    spec_cells = [s for s in c.pooled if s.role == "speculative"]
    if spec_cells and c.k is None:
        out.append(_f("k_unknown", "info", "draft length k unknown (pass --k): the per-request acceptance estimate "
                      "from chunks needs it"))
    for s in spec_cells:
        if (s.chunk_estimate_safe_share is not None and s.chunk_estimate_safe_share < 0.9
                and s.acceptance_source_per_request != "server"):
            out.append(_f("chunk_estimate_withheld", "info", f"speculative qps={s.qps} T={_t(s.temperature)}: in "
                          f"{100 * (1 - s.chunk_estimate_safe_share):.0f}% of requests chunks merge engine steps or "
                          f"tokens were not counted exactly (method {s.token_count_method}); their per-request "
                          "acceptance estimate is withheld, use the /metrics numbers", cell=_label(s),
                          safe_share=s.chunk_estimate_safe_share))
    if any(s.acceptance_semantics_metrics == "v0_all_positions" for s in spec_cells):
        out.append(_f("v0_acceptance_semantics", "warning", "server is vLLM V0: acceptance_rate_metrics counts "
                      "accepted positions after the first rejection too and is NOT comparable with vLLM V1's rate "
                      "(pass --k for the V1-comparable one)"))
    return out


def completeness(c: FindingContext) -> list[Finding]:
    out = []
    if c.lossless is not None and c.lossless.passed is None:
        out.append(_f("lossless_inconclusive", "warning", f"losslessness check could not run: {c.lossless.detail}"))
    if not c.complete:
        out.append(_f("run_incomplete", "warning", "run incomplete (interrupted): rerun with --resume to finish the "
                      "remaining cells"))
    return out


RULES: list[Callable[[FindingContext], list[Finding]]] = [
    not_lossless, engine_settings, startup_memory, synthetic_acceptance, event_loop_stamps, workload_realism,
    sample_sizes, per_cell, step_steadiness, acceptance_quality, completeness,
]


def bench_findings(ctx: FindingContext, extra: list[Finding] | None = None) -> list[Finding]:
    """Every rule's findings in report order, then ``extra`` (notes the runner collected on the way)."""
    return [f for rule in RULES for f in rule(ctx)] + list(extra or [])

"""A bench run's statistics: repeats pooled per (role, load, temperature), comparisons, acceptance breakdown.

Repeats of one cell are pooled by summarising all their requests together and summing their /metrics
counter deltas (:func:`pool_deltas`). Comparisons come from :mod:`specwise.comparisons`, the definition
``simulate`` uses too.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from specwise.bench.cell import CellRun, attach_metrics
from specwise.comparisons import ArmRun, compare_arms
from specwise.metrics.adapters import MetricsDelta
from specwise.metrics.definitions import per_request_acceptance, summarize_cell
from specwise.schemas.base import Source
from specwise.schemas.results import AcceptanceBreakdown, CellSummary, Comparison, RequestRecord
from specwise.stats import percentile

__all__ = ["ROLE_ORDER", "acceptance_breakdown", "comparisons", "group_cells", "pool_deltas", "pooled_cells"]

LIKE_FOR_LIKE = "baseline_like_for_like"
ROLE_ORDER = ("baseline", LIKE_FOR_LIKE, "speculative")
GroupKey = tuple[str, float | None, float | None]


def group_cells(cells: list[CellRun]) -> dict[GroupKey, list[CellRun]]:
    """Cells by (role, qps, temperature): the repeats of one cell."""
    groups: dict[GroupKey, list[CellRun]] = {}
    for cell in cells:
        groups.setdefault((cell.role, cell.qps, cell.temperature), []).append(cell)
    return groups


def pool_deltas(deltas: list[MetricsDelta]) -> MetricsDelta:
    """Sum counter deltas of several windows of the same server (repeats of one cell)."""
    first = deltas[0]
    pooled = first.model_copy(deep=True)
    pooled.window_s = sum(d.window_s for d in deltas)
    pooled.counter_reset = any(d.counter_reset for d in deltas)
    specs = [d.spec for d in deltas if d.spec is not None]
    if not specs:
        return pooled
    sp = specs[0].model_copy(deep=True)

    def total(attr: str) -> float | None:
        vals = [getattr(s, attr) for s in specs if getattr(s, attr) is not None]
        return float(sum(vals)) if vals else None

    sp.drafts, sp.draft_tokens, sp.accepted, sp.emitted = (total("drafts"), total("draft_tokens"),
                                                          total("accepted"), total("emitted"))
    sp.acceptance_rate = (sp.accepted / sp.draft_tokens) if sp.accepted is not None and sp.draft_tokens else None
    if sp.semantics == "v1_accepted_prefix" and sp.drafts and sp.accepted is not None:
        sp.mean_acceptance_length = 1.0 + sp.accepted / sp.drafts
        if all(s.per_position is not None and s.drafts for s in specs):
            n = min(len(s.per_position) for s in specs)  # type: ignore[arg-type]
            sp.per_position = [sum(s.per_position[i] * s.drafts for s in specs) / sp.drafts  # type: ignore
                               for i in range(n)]
    elif sp.semantics == "v0_all_positions" and sp.k and sp.draft_tokens and sp.emitted is not None:
        sp.mean_acceptance_length = sp.emitted * sp.k / sp.draft_tokens
        sp.acceptance_rate_prefix_equivalent = max(0.0, sp.emitted / sp.draft_tokens - 1.0 / sp.k)
    else:
        lengths = [s.mean_acceptance_length for s in specs if s.mean_acceptance_length is not None]
        sp.mean_acceptance_length = float(np.mean(lengths)) if lengths else None
    sp.counter_reset = any(s.counter_reset for s in specs)
    pooled.spec = sp
    return pooled


def pooled_cells(cells: list[CellRun], records: dict[str, list[RequestRecord]], k: int | None) -> list[CellSummary]:
    """One summary per (role, qps, temperature), repeats pooled, in report order."""
    out = []
    for (role, qps, temp), group in sorted(group_cells(cells).items(), key=lambda kv: (
            ROLE_ORDER.index(kv[0][0]), kv[0][1] or 0, -1 if kv[0][2] is None else kv[0][2])):
        if len(group) == 1:
            out.append(group[0].summary)
            continue
        recs = [r for c in group for r in records.get(c.cell_id, [])]
        s = summarize_cell(recs, role=role, source=Source.measured, qps=qps, temperature=temp, k=k)  # type: ignore
        s.load_kind, s.load = group[0].summary.load_kind, group[0].summary.load
        s.duration_s = sum(c.summary.duration_s for c in group)
        deltas = [c.metrics for c in group if c.metrics is not None]
        metrics = pool_deltas(deltas) if deltas else None
        gauges = [c.gauges for c in group if c.gauges]
        attach_metrics(s, metrics, next((c.metrics_error for c in group if c.metrics_error), None), None, recs)
        s.kv_cache_usage_max = max((g.kv_cache_usage_max for g in gauges if g.kv_cache_usage_max is not None),
                                   default=None)
        s.num_requests_waiting_max = max((g.waiting_max for g in gauges if g.waiting_max is not None), default=None)
        s.saturated = any(c.saturation.saturated for c in group)
        s.repeats = len(group)
        out.append(s)
    return out


def comparisons(cells: list[CellRun], records: dict[str, list[RequestRecord]], seed: int) -> list[Comparison]:
    """Speculative vs each baseline present, per (qps, temperature)."""
    groups = group_cells(cells)
    out = []
    keys = sorted({(b, q, t) for (_, q, t) in groups for b in ("baseline", LIKE_FOR_LIKE)},
                  key=lambda x: (x[1] or 0, -1 if x[2] is None else x[2], x[0] != "baseline"))
    for baseline_role, qps, temp in keys:
        base_cells = groups.get((baseline_role, qps, temp), [])
        spec_cells = groups.get(("speculative", qps, temp), [])
        if not base_cells or not spec_cells:
            continue

        def arm(group: list[CellRun]) -> list[ArmRun]:
            return [ArmRun(summary=c.summary, records=records.get(c.cell_id, []), repeat=c.repeat) for c in group]

        out.append(compare_arms(arm(base_cells), arm(spec_cells), baseline_role=baseline_role, seed=seed))
    return out


def acceptance_breakdown(cells: list[CellRun], records: dict[str, list[RequestRecord]],
                         k: int | None) -> list[AcceptanceBreakdown]:
    """Per-request acceptance of the speculative arm by temperature bucket, overall and per category."""
    rows: dict[tuple[float | None, str | None], list[tuple[float | None, float | None, str | None]]] = {}
    for cell in cells:
        if cell.role != "speculative":
            continue
        for r in records.get(cell.cell_id, []):
            if not r.ok:
                continue
            acc = per_request_acceptance(r, k)
            bucket = cell.temperature if cell.temperature is not None else r.temperature
            rows.setdefault((bucket, None), []).append(acc)
            rows.setdefault((bucket, r.category), []).append(acc)
    out = []
    for (temp, cat), accs in sorted(rows.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or "")):
        rates = [a[0] for a in accs if a[0] is not None]
        lengths = [a[1] for a in accs if a[1] is not None]
        sources = Counter(a[2] for a in accs if a[2])
        out.append(AcceptanceBreakdown(
            temperature=temp, category=cat, requests=len(accs),
            acceptance_rate_p10=percentile(rates, 10), acceptance_rate_p50=percentile(rates, 50),
            acceptance_rate_p90=percentile(rates, 90), acceptance_length_p50=percentile(lengths, 50),
            source=sources.most_common(1)[0][0] if sources else None,
        ))
    return out

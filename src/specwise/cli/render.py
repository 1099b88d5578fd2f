"""The one terminal rendering of a :class:`~specwise.schemas.results.RunResult`, simulated or measured.

``simulate`` and ``bench`` both print through :func:`render_run_result`; nothing here branches on the
stage that produced the result, only on which parts the result has (servers launched, a simulation block,
a losslessness check). Tables fit the width they have: columns are dropped in a fixed order of importance
(the caption names the ones left out, ``--json`` / ``--out`` keep everything), and when even the essential
columns do not fit, every row is printed as a stacked block of ``name value`` pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from specwise.cli.output import fmt_speedup
from specwise.crossover import crossover_sentence
from specwise.schemas.results import CellSummary, Comparison, PolicyPoint, RunResult, SpeedupCI

SEVERITY_STYLE = {"blocking": "bold red", "warning": "yellow", "info": ""}


@dataclass(frozen=True)
class Col:
    """A table column: header, cell text (rich markup allowed) and importance (0 = always kept)."""

    header: str
    cell: Callable[[object], str]
    priority: int = 1
    left: bool = False


def _width(markup: str) -> int:
    return Text.from_markup(markup).cell_len


def fit_table(title: str, cols: Sequence[Col], rows: Sequence[object], width: int, *,
              caption: str | None = None, sections: Callable[[object], bool] | None = None) -> RenderableType:
    """A table of ``rows`` with as many columns as fit in ``width`` (lowest priority dropped first).

    Rows too wide even with the priority-0 columns alone are stacked: one block per row, one
    ``header: value`` pair per column, so nothing is cut to '…'.
    """
    cells = [[c.cell(r) for c in cols] for r in rows]
    need = [max([_width(c.header)] + [_width(row[i]) for row in cells]) + 3 for i, c in enumerate(cols)]
    keep = list(range(len(cols)))
    for prio in sorted({c.priority for c in cols if c.priority > 0}, reverse=True):
        if sum(need[i] for i in keep) + 1 <= width:
            break
        keep = [i for i in keep if cols[i].priority != prio]
    if sum(need[i] for i in keep) + 1 > width:
        return _stacked(title, cols, cells, caption)
    dropped = [cols[i].header for i in range(len(cols)) if i not in keep]
    if dropped:
        note = f"left out for width {width}: {', '.join(dropped)} (all in --json / --out)"
        caption = f"{caption} {note}" if caption else note
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i in keep:
        table.add_column(cols[i].header, justify="left" if cols[i].left else "right", no_wrap=True)
    for r, row in zip(rows, cells):
        table.add_row(*[row[i] for i in keep], end_section=bool(sections and sections(r)))
    return table


def _stacked(title: str, cols: Sequence[Col], cells: list[list[str]], caption: str | None) -> RenderableType:
    parts: list[RenderableType] = [Text(title, style="italic")]
    for row in cells:
        head = " ".join(v for c, v in zip(cols, row) if c.priority == 0 and v)
        parts.append(Text.from_markup("[bold]" + head + "[/bold]"))
        for c, v in zip(cols, row):
            if c.priority > 0:
                parts.append(Text.from_markup(f"  {c.header}: {v}"))
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def ms(v: float | None) -> str:
    """Seconds as milliseconds for tables; '-' for missing."""
    if v is None:
        return "-"
    m = v * 1e3
    return f"{m:,.0f}" if abs(m) >= 1000 else f"{m:.1f}"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def load_label(x: CellSummary | Comparison | PolicyPoint) -> str:
    if x.load is None:
        return "closed"
    return f"c={x.load:g}" if x.load_kind == "concurrency" else f"{x.load:g}"


def _temp(t: float | None) -> str:
    return "mix" if t is None else f"{t:g}"


def _speedup(x: SpeedupCI | None) -> str:
    if x is None or x.value is None:
        return "-"
    ci = f" [{x.ci_low:.2f}, {x.ci_high:.2f}]" if x.ci_low is not None and x.ci_high is not None else ""
    return fmt_speedup(x.value) + ci


def header(result: RunResult) -> list[RenderableType]:
    """What was run: the simulated deployment and its acceptance (measured runs: their servers)."""
    out: list[RenderableType] = []
    spec = result.inputs.deployment.get("speculative")
    if spec is not None:
        k = result.inputs.k
        what = f"{spec.target} on {spec.tp}x {spec.gpu}"
        arm = f"{spec.method}" + (f" {spec.draft}" if spec.draft else "") + (f", k={k}" if k else "")
        out.append(Text.from_markup(f"[bold]{result.source.capitalize()} run[/bold]: {what}; speculative = {arm}"))
        if spec.cost_ratio is not None:
            from specwise.perf.steptime import format_cost_ratio

            kind = "measured constants" if spec.calibration else "estimated"
            out.append(Text(f"Draft cost at batch 1 ({kind}): c = {format_cost_ratio(spec.cost_ratio)} "
                            f"({spec.cost_ratio_basis}); every step is priced by the same step-time model"))
        if result.inputs.step_time is not None:
            out.append(Text(f"Step times: {result.inputs.step_time.calibration}"))
        acc = result.inputs.acceptance
        line = f"KV cache: {spec.kv_capacity_tokens:,} tokens ({spec.kv_capacity_source})." \
            if spec.kv_capacity_tokens is not None else ""
        if acc is not None:
            line += f" Acceptance ({acc.source}): " + "; ".join(acc.notes or ["see --json inputs.acceptance"])
        out.append(Text(line.strip()))
    for role, info in result.servers.items():
        if result.inputs.deployment or not (info.version or info.model):
            continue
        spec_txt = f", {info.spec_method} k={info.k}" if info.spec_method else ""
        out.append(Text(f"{role}: {info.model or '?'} on vLLM {info.version or '?'} ({info.url}){spec_txt}",
                        style="dim"))
    return out


def findings_block(result: RunResult) -> RenderableType | None:
    if not result.findings:
        return None
    table = Table(title="Findings", show_header=False, title_justify="left", box=None)
    order = {"blocking": 0, "warning": 1, "info": 2}
    for f in sorted(result.findings, key=lambda f: order[f.severity]):
        table.add_row(Text("• " + f.message, style=SEVERITY_STYLE[f.severity]))
    return table


def memory_vs_plan(result: RunResult) -> Group | None:
    """Per launched server: startup-log memory (measured) vs its plan (estimated), or why it was not compared."""
    checks = [(role, info.memory_check) for role, info in result.servers.items() if info.launched]
    if not checks:
        return None
    table = Table(title="Startup memory vs plan (per GPU; GiB = 2^30 B; planned = estimated by `specwise plan`, "
                        "logged = measured by vLLM at startup; error = (planned - logged) / logged)",
                  title_justify="left")
    for col in ("role", "quantity", "unit", "planned", "logged", "error"):
        table.add_column(col, justify="left" if col in ("role", "quantity", "unit") else "right")
    lines: list[Text] = []
    for role, check in checks:
        if check is None or not check.compared:
            reason = check.reason if check else "no startup-log check was made"
            lines.append(Text(f"{role}: not compared with a plan: {reason}", style="yellow"))
            continue
        source = "its command" if check.plan_source == "command" else "--plan file"
        notes = [a for a in check.assumptions if not a.startswith("plan default: ")]
        defaults = len(check.assumptions) - len(notes)
        if defaults:
            notes.append(f"{defaults} plan defaults (servers/{role}.json)")
        lines.append(Text(f"{role}: {check.budget} budget of the plan for {source}; " + "; ".join(notes),
                          style="dim"))
        flagged = {d.split(":", 1)[0] for d in check.deviations}
        for row in check.comparison:
            fmt = (lambda v: f"{v:,.0f}") if row.unit == "tokens" else (lambda v: f"{v:,.2f}")
            err = "-" if row.error_fraction is None else f"{row.error_fraction:+.1%}"
            style = "bold red" if row.quantity in flagged else None
            table.add_row(role, row.quantity, row.unit, fmt(row.predicted), fmt(row.logged),
                          Text(err + (f" (beyond ±{check.tolerance:.0%})" if style else ""), style=style or ""))
    return Group(*([table] if table.row_count else []), *lines)


def _per_request(c: CellSummary) -> str:
    if c.acceptance_rate_per_request_p50 is None:
        return "-"
    return (f"{_num(c.acceptance_rate_per_request_p10)}-{_num(c.acceptance_rate_per_request_p50)}-"
            f"{_num(c.acceptance_rate_per_request_p90)} ({c.acceptance_source_per_request})")


CELL_COLS = [
    Col("role", lambda c: c.role + (" *" if c.saturated else ""), 0, left=True),
    Col("load", load_label, 0),
    Col("T", lambda c: _temp(c.temperature), 0),
    Col("TPOT P50", lambda c: ms(c.tpot_p50_s), 0),
    Col("E2E P50", lambda c: ms(c.e2e_p50_s), 0),
    Col("TTFT P50", lambda c: ms(c.ttft_p50_s), 1),
    Col("tok/s", lambda c: _num(c.output_tokens_per_s, ",.0f"), 1),
    Col("ok", lambda c: str(c.requests_ok), 2),
    Col("fail", lambda c: str(c.requests_failed), 2),
    Col("acc /metrics", lambda c: _num(c.acceptance_rate_metrics), 2),
    Col("len /metrics", lambda c: _num(c.mean_acceptance_length_metrics), 3),
    Col("TPOT P99", lambda c: ms(c.tpot_p99_s), 3),
    Col("E2E P99", lambda c: ms(c.e2e_p99_s), 3),
    Col("TTFT P99", lambda c: ms(c.ttft_p99_s), 4),
    Col("batch", lambda c: _num(c.mean_batch_size, ".0f"), 4),
    Col("ITL/tok P50", lambda c: ms(c.itl_per_token_p50_s), 5),
    Col("ITL/chunk P50", lambda c: ms(c.itl_per_chunk_p50_s), 5),
    Col("acc/req P10-P50-P90", _per_request, 6),
    Col("step p90/p10", lambda c: _num(c.step_window_spread), 4),
]

COMPARISON_COLS = [
    Col("vs", lambda c: "like-for-like" if c.baseline_role != "baseline" else "baseline", 3, left=True),
    Col("load", load_label, 0),
    Col("T", lambda c: _temp(c.temperature), 0),
    Col("E2E P50", lambda c: _speedup(c.speedup_e2e_p50), 0),
    Col("TPOT P50", lambda c: _speedup(c.speedup_tpot_p50), 1),
    Col("tok/s ratio", lambda c: _num(c.throughput_ratio), 2),
    Col("E2E P99", lambda c: _speedup(c.speedup_e2e_p99), 2),
    Col("TPOT P99", lambda c: _speedup(c.speedup_tpot_p99), 3),
    Col("TTFT P50", lambda c: _speedup(c.speedup_ttft_p50), 3),
]


def cells_table(result: RunResult, width: int) -> RenderableType:
    title = (f"Cells ({result.source}; latencies in ms; load = req/s, or c=N requests in flight (closed loop); "
             "TPOT = (E2E-TTFT)/(tokens-1); ITL/token = chunk gap / tokens in chunk; ITL/chunk = chunk gap; "
             "batch = mean running sequences; step p90/p10 = spread of the per-second median chunk gap, ~1.0 when "
             "the step held steady; * = saturated (queue keeps growing))")
    return fit_table(title, CELL_COLS, result.cells, width)


def comparisons_table(result: RunResult, width: int) -> RenderableType:
    with_ci = any(c.speedup_e2e_p50.ci_low is not None for c in result.comparisons)
    ci = "; 95% CI, bootstrap of repeats then 2-s send-time blocks" if with_ci else ""
    title = (f"Speedup = baseline latency / speculative latency (> 1: speculation faster; {result.source}{ci}; "
             "tok/s ratio = speculative / baseline output tokens per second)")
    cols = COMPARISON_COLS
    if any(c.baseline_role != "baseline" for c in result.comparisons):  # two baselines: rows need the column
        cols = [Col(c.header, c.cell, 0, c.left) if c.header == "vs" else c for c in cols]
    return fit_table(title, cols, result.comparisons, width)


def simulation_blocks(result: RunResult, width: int) -> list[RenderableType]:
    sim = result.simulation
    if sim is None:
        return []
    out: list[RenderableType] = []
    if sim.crossover_batch_size is not None:
        out.append(Text(f"At the simulated crossover the speculative server runs ~{sim.crossover_batch_size:.0f} "
                        "sequences per step (simulated)."))
    if sim.baseline_saturation_load is not None:
        unit = "requests in flight" if result.comparisons and result.comparisons[0].load_kind == "concurrency" \
            else "req/s"
        out.append(Text(f"Baseline saturates (queue grows) at {sim.baseline_saturation_load:g} {unit}."))
    if sim.k_sweep:
        ks = sorted({p.k for p in sim.k_sweep})
        loads = sorted({p.load for p in sim.k_sweep if p.load is not None})
        by = {(p.load, p.k): p for p in sim.k_sweep}
        cols = [Col("load", lambda ld: load_label(by[(ld, ks[0])]), 0)] + [
            Col(f"k={kk}", (lambda kk: lambda ld: fmt_speedup(by[(ld, kk)].speedup_e2e_p50)
                            + (" *" if by[(ld, kk)].saturated else ""))(kk), 0) for kk in ks]
        out.append(fit_table("Fixed k: E2E p50 speedup vs no speculation (>1 = speculation faster; * = saturated; "
                             "simulated)", cols, loads, width))
    g = sim.guard
    if g is None:
        return out
    pol = {(p.load, p.policy): p for p in sim.policies}
    loads = sorted({p.load for p in sim.policies if p.load is not None})

    def get(ld: float, name: str, attr: str) -> float | None:
        p = pol.get((ld, name))
        return getattr(p, attr) if p is not None else None

    oracle = any(p.policy == "oracle" for p in sim.policies)  # --no-oracle runs have none
    cols = [Col("load", lambda ld: load_label(pol[(ld, "fixed")]), 0),
            Col(f"fixed k={sim.k}", lambda ld: fmt_speedup(get(ld, "fixed", "speedup_e2e_p50")), 0),
            Col("guard", lambda ld: fmt_speedup(get(ld, "guard", "speedup_e2e_p50")), 0),
            *([Col("oracle", lambda ld: fmt_speedup(get(ld, "oracle", "speedup_e2e_p50")), 1)] if oracle else []),
            Col("guard mean k", lambda ld: _num(get(ld, "guard", "mean_k")), 2),
            *([Col("oracle mean k", lambda ld: _num(get(ld, "oracle", "mean_k")), 2)] if oracle else [])]
    out.append(fit_table("Guard: E2E p50 speedup vs no speculation (>1 = speculation faster; simulated)", cols, loads,
                         width, caption="fixed = k always; guard = recommended schedule; oracle = best k per step "
                         "(upper bound)."))
    since = f"vLLM {g.vllm_since}+; " if g.vllm_since else ""
    out.append(Text.from_markup(f"[bold]Recommended guard[/bold] ({since}closed-loop model, mean context "
                                f"{g.mean_context_tokens:.0f} tokens): --speculative-config "
                                f"'{escape(json.dumps(g.speculative_config))}'"))
    if g.disable_by_batch_size is not None:
        out.append(Text(f"V0 / ArcticInference equivalent: disable_by_batch_size={g.disable_by_batch_size} "
                        "(ignored by vLLM V1)."))
    worst = (f"Worst E2E p50 speedup over the sweep: fixed {fmt_speedup(g.min_speedup_fixed)}, guard "
             f"{fmt_speedup(g.min_speedup_guard)}")
    out.append(Text.from_markup(worst + (f", oracle {fmt_speedup(g.min_speedup_oracle)}." if oracle else ".")))
    return out


def acceptance_table(result: RunResult, width: int) -> RenderableType | None:
    if not result.acceptance_breakdown:
        return None
    cols = [Col("T", lambda r: _temp(r.temperature), 0), Col("category", lambda r: r.category or "all", 0, left=True),
            Col("requests", lambda r: str(r.requests), 1), Col("P10", lambda r: _num(r.acceptance_rate_p10), 1),
            Col("P50", lambda r: _num(r.acceptance_rate_p50), 0), Col("P90", lambda r: _num(r.acceptance_rate_p90), 1),
            Col("length P50", lambda r: _num(r.acceptance_length_p50), 2), Col("source", lambda r: r.source or "-", 2)]
    return fit_table(f"Per-request acceptance of the speculative arm (accepted / drafted; {result.source}), by "
                     "temperature and category", cols, result.acceptance_breakdown, width)


def render_run_result(result: RunResult, console: Console, *, footer: str | None = None) -> None:
    """Print ``result`` for people: what ran, findings first, then cells, speedups, crossover, extras."""
    width = console.width
    parts: list[RenderableType] = header(result)
    for block in (findings_block(result), memory_vs_plan(result)):
        if block is not None:
            parts.append(block)
    if result.cells:
        parts.append(cells_table(result, width))
    if result.comparisons:
        parts.append(comparisons_table(result, width))
    for cross in result.crossovers:
        if len(cross.loads) >= 2:  # one load locates no crossover; the comparisons table already says it all
            parts.append(Text(crossover_sentence(cross), style="bold"))
    parts += simulation_blocks(result, width)
    acc = acceptance_table(result, width)
    if acc is not None:
        parts.append(acc)
    if result.lossless is not None:
        ok = {True: "[green]passed[/green]", False: "[bold red]FAILED[/bold red]", None: "[yellow]not run[/yellow]"}
        parts.append(Text.from_markup(f"Losslessness: {ok[result.lossless.passed]} — {result.lossless.detail}"))
    if footer:
        parts.append(Text(footer, style="dim"))
    console.print(Group(*parts))

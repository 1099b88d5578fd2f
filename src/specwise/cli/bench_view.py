"""Rich rendering for ``specwise bench``: the live progress panel and the final report tables."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from specwise.cli.output import fmt_s, fmt_speedup
from specwise.crossover import crossover_sentence
from specwise.schemas.results import RequestRecord, RunResult
from specwise.stats import percentile


class LiveProgress:
    """Current cell, completed/failed requests and running TTFT/TPOT percentiles (implements runner.Progress)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.cell = "-"
        self.planned = 0
        self.done = 0
        self.failed = 0
        self.ttft: list[float] = []
        self.tpot: list[float] = []
        self.cells_done = 0
        self.last = ""
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)  # type: ignore[arg-type]

    def cell_started(self, cell_id: str, n_requests: int) -> None:
        self.cell, self.planned, self.done, self.failed = cell_id, n_requests, 0, 0
        self.ttft, self.tpot = [], []

    def request_done(self, record: RequestRecord) -> None:
        self.done += 1
        if not record.ok:
            self.failed += 1
            return
        if record.ttft_s is not None:
            self.ttft.append(record.ttft_s)
        if record.tpot_s is not None:
            self.tpot.append(record.tpot_s)

    def cell_finished(self, cell) -> None:  # noqa: ANN001 - runner.CellRun
        self.cells_done += 1
        s = cell.summary
        acc = f", acceptance {s.acceptance_rate_metrics:.2f}" if s.acceptance_rate_metrics is not None else ""
        self.console.print(
            f"[dim]{cell.cell_id}[/dim]: {s.requests_ok} ok, {s.requests_failed} failed, "
            f"TPOT P50 {fmt_s(s.tpot_p50_s)} ms, E2E P50 {fmt_s(s.e2e_p50_s)} ms{acc}"
            + (" [red]saturated[/red]" if s.saturated else "")
        )

    def message(self, text: str) -> None:
        self.console.print(f"[dim]{text}[/dim]")

    def _render(self) -> Text:
        return Text.from_markup(
            f"[bold]{self.cell}[/bold]  {self.done}/{self.planned} done, "
            f"[{'red' if self.failed else 'green'}]{self.failed} failed[/]  "
            f"TTFT P50/P99 {fmt_s(percentile(self.ttft, 50))}/{fmt_s(percentile(self.ttft, 99))} ms  "
            f"TPOT P50/P99 {fmt_s(percentile(self.tpot, 50))}/{fmt_s(percentile(self.tpot, 99))} ms  "
            f"(cells finished: {self.cells_done})"
        )


SEVERITY_STYLE = {"blocking": "bold red", "warning": "yellow", "info": ""}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def memory_vs_plan(result: RunResult) -> Group | None:
    """Per launched server: startup-log memory (measured) vs its plan (estimated), or why it was not compared."""
    checks = [(role, info.get("memory_check")) for role, info in result.servers.items()
              if isinstance(info, dict) and info.get("launched")]
    if not checks:
        return None
    table = Table(title="Startup memory vs plan (per GPU; GiB = 2^30 B; planned = estimated by `specwise plan`, "
                        "logged = measured by vLLM at startup; error = (planned - logged) / logged)",
                  title_justify="left")
    for col in ("role", "quantity", "unit", "planned", "logged", "error"):
        table.add_column(col, justify="left" if col in ("role", "quantity", "unit") else "right")
    lines: list[Text] = []
    for role, check in checks:
        if not check or not check.get("compared"):
            reason = check.get("reason") if check else "no startup-log check was made"
            lines.append(Text(f"{role}: not compared with a plan: {reason}", style="yellow"))
            continue
        tol = check.get("tolerance", 0.1)
        source = "its command" if check.get("plan_source") == "command" else "--plan file"
        notes = [a for a in check.get("assumptions") or [] if not a.startswith("plan default: ")]
        defaults = len(check.get("assumptions") or []) - len(notes)
        if defaults:
            notes.append(f"{defaults} plan defaults (servers/{role}.json)")
        lines.append(Text(f"{role}: {check.get('budget')} budget of the plan for {source}; " + "; ".join(notes),
                          style="dim"))
        flagged = {d.split(":", 1)[0] for d in check.get("deviations") or []}
        for row in check.get("comparison") or []:
            fmt = (lambda v: f"{v:,.0f}") if row["unit"] == "tokens" else (lambda v: f"{v:,.2f}")
            err = "-" if row.get("error_fraction") is None else f"{row['error_fraction']:+.1%}"
            style = "bold red" if row["quantity"] in flagged else None
            table.add_row(role, row["quantity"], row["unit"], fmt(row["predicted"]), fmt(row["logged"]),
                          Text(err + (f" (beyond ±{tol:.0%})" if style else ""), style=style or ""))
    return Group(*([table] if table.row_count else []), *lines)


def render_result(result: RunResult, out_dir: str, console: Console) -> None:
    """Findings first (a losslessness failure heads them), then cells, comparisons and acceptance."""
    parts = []
    if result.findings:
        findings = Table(title="Findings", show_header=False, title_justify="left", box=None)
        for f in result.findings:
            findings.add_row(Text("• " + f.message, style=SEVERITY_STYLE[f.severity]))
        parts.append(findings)
    memory = memory_vs_plan(result)
    if memory is not None:
        parts.append(memory)
    cells = Table(title="Cells (measured; latencies in ms; TPOT = (E2E-TTFT)/(tokens-1); "
                        "ITL/token = chunk gap / tokens in chunk; ITL/chunk = chunk gap)", title_justify="left")
    for col in ("role", "qps", "T", "ok", "fail", "TTFT P50", "TTFT P99", "TPOT P50", "TPOT P99", "ITL/tok P50",
                "ITL/chunk P50", "E2E P50", "E2E P99", "tok/s", "acc /metrics", "len /metrics", "acc/req P10-P50-P90"):
        cells.add_column(col, justify="right" if col not in ("role",) else "left")
    for c in result.cells:
        per_req = ("-" if c.acceptance_rate_per_request_p50 is None else
                   f"{_pct(c.acceptance_rate_per_request_p10)}-{_pct(c.acceptance_rate_per_request_p50)}-"
                   f"{_pct(c.acceptance_rate_per_request_p90)} ({c.acceptance_source_per_request})")
        cells.add_row(
            c.role, "closed" if c.qps is None else f"{c.qps:g}", "mix" if c.temperature is None else f"{c.temperature:g}",
            str(c.requests_ok), str(c.requests_failed), fmt_s(c.ttft_p50_s), fmt_s(c.ttft_p99_s),
            fmt_s(c.tpot_p50_s), fmt_s(c.tpot_p99_s), fmt_s(c.itl_per_token_p50_s), fmt_s(c.itl_per_chunk_p50_s),
            fmt_s(c.e2e_p50_s), fmt_s(c.e2e_p99_s),
            "-" if c.output_tokens_per_s is None else f"{c.output_tokens_per_s:.0f}",
            _pct(c.acceptance_rate_metrics), _pct(c.mean_acceptance_length_metrics), per_req,
        )
    parts.append(cells)
    if result.comparisons:
        comp = Table(title="Speedup = baseline latency / speculative latency (> 1: speculation faster; "
                           "95% bootstrap CI)", title_justify="left")
        for col in ("vs", "qps", "T", "TPOT P50", "TPOT P99", "E2E P50", "E2E P99", "TTFT P50"):
            comp.add_column(col, justify="right")

        def sp(x) -> str:  # noqa: ANN001
            if x is None or x.value is None:
                return "-"
            ci = f" [{x.ci_low:.2f}, {x.ci_high:.2f}]" if x.ci_low is not None else ""
            return fmt_speedup(x.value) + ci

        for c in result.comparisons:
            comp.add_row("like-for-like" if c.baseline_role != "baseline" else "baseline",
                         "closed" if c.qps is None else f"{c.qps:g}",
                         "mix" if c.temperature is None else f"{c.temperature:g}", sp(c.speedup_tpot_p50),
                         sp(c.speedup_tpot_p99), sp(c.speedup_e2e_p50), sp(c.speedup_e2e_p99),
                         sp(c.speedup_ttft_p50))
        parts.append(comp)
    for cross in result.crossovers:
        if len(cross.loads) >= 2:  # one load locates no crossover; the comparisons table already says it all
            parts.append(Text(crossover_sentence(cross), style="bold"))
    if result.acceptance_breakdown:
        acc = Table(title="Per-request acceptance of the speculative arm (accepted / drafted), by temperature "
                          "and category", title_justify="left")
        for col in ("T", "category", "requests", "P10", "P50", "P90", "length P50", "source"):
            acc.add_column(col, justify="right")
        for row in result.acceptance_breakdown:
            acc.add_row("mix" if row.temperature is None else f"{row.temperature:g}", row.category or "all",
                        str(row.requests), _pct(row.acceptance_rate_p10), _pct(row.acceptance_rate_p50),
                        _pct(row.acceptance_rate_p90), _pct(row.acceptance_length_p50), row.source or "-")
        parts.append(acc)
    if result.lossless is not None:
        ok = {True: "[green]passed[/green]", False: "[bold red]FAILED[/bold red]", None: "[yellow]not run[/yellow]"}
        parts.append(Text.from_markup(f"Losslessness: {ok[result.lossless.passed]} — {result.lossless.detail}"))
    parts.append(Text(f"Run directory: {out_dir} (records.jsonl, cells.jsonl, summary.json)", style="dim"))
    console.print(Group(*parts))

"""Rich rendering for ``specwise bench``: the live progress panel; the report is :mod:`specwise.cli.render`'s."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.text import Text

from specwise.cli.output import fmt_s
from specwise.cli.render import memory_vs_plan, render_run_result
from specwise.schemas.results import RequestRecord, RunResult

__all__ = ["LiveProgress", "memory_vs_plan", "render_result"]
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


def render_result(result: RunResult, out_dir: str, console: Console) -> None:
    """The run through the shared renderer (findings first), then where its files are."""
    render_run_result(result, console,
                      footer=f"Run directory: {out_dir} (records.jsonl, cells.jsonl, summary.json, config.json)")

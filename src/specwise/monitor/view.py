"""The live terminal view: one line per endpoint in two tables (speculation; load and latency) and a legend.

Every column is measured over the window from the server's own counters and histograms; the legend says how each
figure is defined and where the thresholds came from.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from specwise.schemas.monitor import EndpointReading, LatencyQuantiles, MonitorReport, Thresholds

__all__ = ["render"]

STATE_STYLE = {
    "healthy": "bold green", "break_even": "bold yellow", "net_negative": "bold red", "over_crossover": "bold magenta",
    "idle": "dim", "no_spec": "dim", "down": "bold red", "warming_up": "dim",
}
STATE_TEXT = {
    "healthy": "healthy", "break_even": "break-even", "net_negative": "NET-NEGATIVE", "over_crossover":
    "OVER CROSSOVER", "idle": "idle", "no_spec": "no spec metrics", "down": "DOWN", "warming_up": "warming up",
}


def _dur(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _f(v: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _q(q: LatencyQuantiles | None) -> str:
    if q is None or not q.count:
        return "-"
    return "/".join("-" if v is None else f"{v * 1e3:.0f}" for v in (q.p50_s, q.p95_s, q.p99_s))


def _who(r: EndpointReading) -> str:
    who = r.url
    if r.model_names:
        who += "\n" + ", ".join(r.model_names)
    if len(r.engines) > 1:
        who += f" ({len(r.engines)} engines)"
    return who


def _state(r: EndpointReading) -> Text:
    h = r.health
    t = Text(STATE_TEXT[h.state], style=STATE_STYLE[h.state])
    t.append(f" {_dur(h.held_s)}", style="dim")
    if h.state == "over_crossover" and h.acceptance_state:
        t.append(f"\n(acceptance: {STATE_TEXT[h.acceptance_state]})", style="dim")
    return t


def _thresholds_line(th: Thresholds) -> str:
    src = {"decision": f"from {th.decision_path}", "flags": "from flags",
           "rule_of_thumb": "RULE OF THUMB, not this pair's break-even"}[th.source]
    parts = [f"healthy >= {th.healthy_acceptance:.3f}", f"break-even {th.break_even_acceptance:.3f}",
             f"net-negative < {th.net_negative_acceptance:.3f} ({src})"]
    if th.crossover_batch_size is not None:
        parts.append(f"crossover batch {th.crossover_batch_size:g}")
    if th.crossover_qps is not None:
        parts.append(f"crossover {th.crossover_qps:g} req/s")
    return "Thresholds: " + ", ".join(parts)


def render(report: MonitorReport) -> Group:
    spec = Table(title=f"Speculative decoding over the last {report.window_s:g} s (measured, /metrics counter deltas)",
                 title_justify="left", expand=False)
    for col in ("endpoint / model", "state (held)", "accept", "mean len", "per position", "drafted/s",
                "accepted/s"):
        spec.add_column(col, justify="left" if col in ("endpoint / model", "state (held)") else "right")
    load = Table(title="Load and latency (ms P50/P95/P99 from histogram bucket deltas)", title_justify="left")
    for col in ("endpoint", "gen tok/s", "req/s", "running", "waiting", "KV", "TTFT", "TPOT", "E2E"):
        load.add_column(col, justify="left" if col == "endpoint" else "right")
    notes: list[str] = []
    for r in report.readings:
        if not r.ok:
            spec.add_row(r.url, _state(r), "-", "-", "-", "-", "-")
            load.add_row(r.url, *["-"] * 8)
            notes.append(f"{r.url}: {r.error}")
            continue
        per_pos = " ".join(f"{p:.2f}" for p in r.per_position) if r.per_position else "-"
        spec.add_row(_who(r), _state(r), _f(r.acceptance_rate), _f(r.mean_acceptance_length, "{:.2f}"), per_pos,
                     _f(r.drafted_tokens_per_s, "{:.1f}"), _f(r.accepted_tokens_per_s, "{:.1f}"))
        load.add_row(r.url, _f(r.generation_tokens_per_s, "{:.1f}"), _f(r.requests_per_s, "{:.2f}"),
                     f"{_f(r.running_now, '{:.0f}')} (avg {_f(r.running, '{:.1f}')})", _f(r.waiting, "{:.0f}"),
                     _f(None if r.kv_cache_usage is None else r.kv_cache_usage * 100, "{:.1f}%"),
                     _q(r.ttft), _q(r.tpot), _q(r.e2e))
        notes.extend(f"{r.url}: {n}" for n in r.health.reasons[:2])
        if r.missing:
            notes.append(f"{r.url}: not exposed: {', '.join(r.missing)}")
        notes.extend(f"{r.url}: {n}" for n in r.notes)
    legend = Text(_thresholds_line(report.thresholds) + "\n", style="bold")
    legend.append("accept = accepted / drafted tokens (vLLM V1 meaning); mean len = 1 + accepted / drafts (bonus "
                  "token included); per position = accepted at position i / drafts; TPOT = "
                  "request_time_per_output_token when exposed, else per-step ITL.\n", style="dim")
    for n in report.thresholds.notes + notes:
        legend.append(n + "\n", style="dim")
    return Group(spec, load, legend)

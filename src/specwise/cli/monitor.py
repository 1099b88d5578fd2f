"""``specwise monitor``: watch speculation in production; emit its Prometheus rules and Grafana dashboard.

``specwise monitor URL...`` is the live watch (the ``watch`` subcommand, taken when the first argument is not a
subcommand name); ``specwise monitor rules`` and ``specwise monitor dashboard`` write the files to deploy.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup


class _WatchByDefault(TyperGroup):
    """``specwise monitor URL`` means ``specwise monitor watch URL``."""

    def parse_args(self, ctx, args):  # noqa: ANN001
        if not args:  # bare `specwise monitor`: its help, exit 0
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["watch", *args]
        return super().parse_args(ctx, args)


monitor = typer.Typer(cls=_WatchByDefault, add_completion=False,
                      help="Watch acceptance against load in production; emit alert rules and a Grafana dashboard.")

DECISION_HELP = "Decision JSON from `specwise decide` (its `monitor` block gives the thresholds)."


def _thresholds(decision, break_even, net_negative, healthy, baseline, crossover_batch, crossover_qps, slo_tpot,
                slo_ttft):
    from specwise.monitor.thresholds import resolve_thresholds

    return resolve_thresholds(decision, break_even=break_even, net_negative=net_negative, healthy=healthy,
                              baseline=baseline, crossover_batch=crossover_batch, crossover_qps=crossover_qps,
                              slo_tpot_p99_s=slo_tpot, slo_ttft_p99_s=slo_ttft)


_BE = typer.Option(None, "--break-even", help="Acceptance (accepted/drafted) below which speculation is slower.")
_NN = typer.Option(None, "--net-negative", help="Acceptance below which speculation clearly costs (default: "
                   "break-even).")
_HE = typer.Option(None, "--healthy", help="Acceptance above which speculation clearly pays (default: break-even "
                   "+ 0.05).")
_BL = typer.Option(None, "--baseline-acceptance", help="Recorded acceptance for the >5-point drop rule.")
_CB = typer.Option(None, "--crossover-batch", help="Running requests above which speculation stops paying.")
_CQ = typer.Option(None, "--crossover-qps", help="Request rate (req/s) above which speculation stops paying.")
_ST = typer.Option(None, "--slo-tpot-p99", help="P99 TPOT SLO in seconds.")
_SF = typer.Option(None, "--slo-ttft-p99", help="P99 TTFT SLO in seconds.")


@monitor.command("watch")
def watch(
    urls: list[str] = typer.Argument(..., help="Server base URLs (http://host:port); /metrics is read from each."),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between scrapes."),
    window: float = typer.Option(60.0, "--window", help="Seconds the windowed figures cover."),
    decision: Path = typer.Option(None, "--decision", help=DECISION_HELP),
    k: int = typer.Option(None, "--k", help="num_speculative_tokens, for V0 / vLLM 0.8.3 servers that do not "
                          "expose it."),
    once: bool = typer.Option(False, "--once", help="Scrape across one window, print once, exit (exit code 1 when "
                              "any endpoint is net-negative, over the crossover or down)."),
    json_out: bool = typer.Option(False, "--json", help="With --once: print the report as JSON."),
    record: Path = typer.Option(None, "--record", help="Append every reading to this JSONL file."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for each /metrics."),
    break_even: float = _BE, net_negative: float = _NN, healthy: float = _HE, baseline: float = _BL,
    crossover_batch: float = _CB, crossover_qps: float = _CQ, slo_tpot: float = _ST, slo_ttft: float = _SF,
) -> None:
    """Live view of speculative decoding on one or more vLLM / SGLang servers (one line per endpoint)."""
    import asyncio

    from specwise.cli.output import console, emit_json
    from specwise.errors import UserError
    from specwise.monitor.view import render
    from specwise.monitor.watch import Monitor, run_loop, run_once

    if interval <= 0 or window <= 0:
        raise UserError("--interval and --window must be > 0")
    if window < 2 * interval:
        raise UserError(f"--window ({window:g} s) must cover at least two scrapes (>= 2 x --interval {interval:g} s)")
    if json_out and not once:
        raise UserError("--json needs --once (the live view is for people; use --record FILE for a time series)")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise UserError(f"'{u}' is not a URL: give the server's base URL, e.g. http://127.0.0.1:8000")
    th = _thresholds(decision, break_even, net_negative, healthy, baseline, crossover_batch, crossover_qps, slo_tpot,
                     slo_ttft)
    mon = Monitor(list(urls), window, th, k=k, timeout_s=timeout)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
    if once:
        report = asyncio.run(run_once(mon, interval, record=record))
        if json_out:
            emit_json(report)
        else:
            console.print(render(report))
        bad = {"net_negative", "over_crossover", "down"}
        raise typer.Exit(1 if any(r.health.state in bad for r in report.readings) else 0)

    from rich.live import Live

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        try:
            asyncio.run(run_loop(mon, interval, record=record, duration_s=duration,
                                 on_poll=lambda rep: live.update(render(rep))))
        except KeyboardInterrupt:
            pass


@monitor.command("rules")
def rules(
    decision: Path = typer.Option(None, "--decision", help=DECISION_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Write the rules file here (default: stdout)."),
    for_minutes: int = typer.Option(10, "--for", help="Minutes a condition must hold before an alert fires."),
    window: str = typer.Option("5m", "--window", help="PromQL range of the windowed rates, e.g. 5m."),
    kv_saturation: float = typer.Option(0.95, "--kv-saturation", help="KV-cache usage (0-1) counted as saturated."),
    drop_points: float = typer.Option(0.05, "--drop", help="Acceptance drop vs the baseline that alerts (0.05 = 5 "
                                      "points)."),
    job: str = typer.Option(None, "--selector", help="Extra PromQL label matchers for every vLLM series, e.g. "
                            "'job=\"vllm\"'."),
    break_even: float = _BE, net_negative: float = _NN, healthy: float = _HE, baseline: float = _BL,
    crossover_batch: float = _CB, crossover_qps: float = _CQ, slo_tpot: float = _ST, slo_ttft: float = _SF,
) -> None:
    """Prometheus recording and alerting rules for speculative decoding (check with `promtool check rules`)."""
    from specwise.monitor.rules import RuleOptions, rules_yaml

    th = _thresholds(decision, break_even, net_negative, healthy, baseline, crossover_batch, crossover_qps, slo_tpot,
                     slo_ttft)
    text = rules_yaml(th, RuleOptions(for_minutes=for_minutes, window=window, kv_saturation=kv_saturation,
                                      drop=drop_points, selector=job or ""))
    _write(text, out)


@monitor.command("dashboard")
def dashboard(
    decision: Path = typer.Option(None, "--decision", help=DECISION_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Write the dashboard JSON here (default: stdout)."),
    break_even: float = _BE, net_negative: float = _NN, healthy: float = _HE, baseline: float = _BL,
    crossover_batch: float = _CB, crossover_qps: float = _CQ, slo_tpot: float = _ST, slo_ttft: float = _SF,
) -> None:
    """Grafana dashboard JSON (built with grafana-foundation-sdk) to import into Grafana."""
    from specwise.monitor.dashboard import dashboard_json

    th = _thresholds(decision, break_even, net_negative, healthy, baseline, crossover_batch, crossover_qps, slo_tpot,
                     slo_ttft)
    _write(dashboard_json(th), out)


def _write(text: str, out: Path | None) -> None:
    import sys

    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"wrote {out}", err=True)

"""``specwise decide``: the verdict (ENABLE / ENABLE WITH GUARD / BORDERLINE / DISABLE / DOES NOT FIT), the rule
table behind it, the config to ship and the thresholds to monitor."""

from __future__ import annotations

from pathlib import Path

import math

import typer

VERDICT_STYLE = {"ENABLE": "bold green", "ENABLE_WITH_GUARD": "bold green", "BORDERLINE": "bold yellow",
                 "DISABLE": "bold red", "DOES_NOT_FIT": "bold red"}
# decide's own simulation is the quick look; a longer one is `specwise simulate`'s job
MAX_DECIDE_SIM_REQUESTS = 5000
STATUS_STYLE = {"pass": "[green]pass[/green]", "fail": "[red]fail[/red]", "unknown": "[yellow]?[/yellow]"}


def _parse_tax(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    from specwise.errors import UserError

    try:
        pts = [tuple(float(x) for x in part.split(":")) for part in text.split(",")]
        (b0, t0), (b1, t1) = pts  # type: ignore[misc]
    except ValueError:
        raise UserError(f"--guard-tax: expected BATCH:TAX,BATCH:TAX e.g. 2:0.066,189:0.216, got '{text}'") from None
    if not all(math.isfinite(x) for x in (b0, t0, b1, t1)) or b0 <= 0 or b1 <= b0 or b1 > 1e6 \
            or not (0 <= t0 < 10 and 0 <= t1 < 10):
        raise UserError("--guard-tax: batches must be finite, > 0, increasing and <= 1e6; taxes in [0, 10)")
    return (b0, t0), (b1, t1)


def decide(
    evidence: list[Path] = typer.Argument(None, help="Evidence files or run directories: `plan --json`, "
                                          "`estimate` output, `bench --out` / `simulate --out`."),
    workload: Path = typer.Option(None, "--workload", "-w", help="Workload profile (YAML/JSON; see "
                                  "examples/workload-profile.yaml)."),
    reference_profile: list[Path] = typer.Option(None, "--reference-profile", help="Acceptance profile or estimate "
                                                 "of the unquantised target (quantisation rule)."),
    json_out: bool = typer.Option(False, "--json", help="Print the Decision as JSON."),
    output: Path = typer.Option(None, "--output", "--out", "-o", help="Also write the Decision JSON to FILE "
                                "(`specwise monitor --decision FILE` reads its thresholds)."),
    report: Path = typer.Option(None, "--report", help="Also write the report to FILE (HTML, with its Markdown "
                                "and JSON twins, as `specwise report` does)."),
    no_simulate: bool = typer.Option(False, "--no-simulate", help="Without runs, do not simulate (faster; the "
                                     "load rules stay unknown)."),
    sim_requests: int = typer.Option(120, "--sim-requests", help="Requests per load point of decide's own "
                                     "simulation."),
    guard_tax: str = typer.Option(None, "--guard-tax", help="TPOT tax of a simulated guard, BATCH:TAX,BATCH:TAX "
                                  "(default 2:0.066,189:0.216, vLLM issue #49548)."),
    guard_cudagraph_tax: float = typer.Option(0.14, "--guard-cudagraph-tax", help="Single-stream slowdown of a "
                                              "guard's CUDA-graph downgrade (default 0.14, vLLM issue #49548)."),
    out_dir: str = typer.Option("runs/decide-confirm", "--bench-out", help="--out of the bench command decide "
                                "prints."),
) -> None:
    """The verdict on speculative decoding for your workload, from whatever evidence you have."""
    from specwise.decide import DecideOptions, decide_with_evidence, load_evidence, load_workload
    from specwise.decide.evidence import ProfileEvidence
    from specwise.errors import UserError

    if not 20 <= sim_requests <= MAX_DECIDE_SIM_REQUESTS:
        raise UserError(f"--sim-requests must lie in [20, {MAX_DECIDE_SIM_REQUESTS}] (fewer gives no usable "
                        "percentiles; for more, run `specwise simulate` and pass its --out file)")
    if not 0 <= guard_cudagraph_tax < 1:
        raise UserError("--guard-cudagraph-tax must lie in [0, 1)")
    opts = DecideOptions(simulate=not no_simulate, sim_requests=sim_requests, bench_out=out_dir,
                         guard_cudagraph_downgrade=guard_cudagraph_tax)
    if guard_tax:
        low, high = _parse_tax(guard_tax)
        opts = DecideOptions(**{**opts.__dict__, "guard_tax_low": low, "guard_tax_high": high})
    ev = load_evidence(list(evidence or []))
    for path in reference_profile or []:
        ref = load_evidence([path])
        if not ref.profiles:
            raise UserError(f"--reference-profile {path}: not an acceptance profile or estimate result")
        ev.profiles += [ProfileEvidence(profile=p.profile, path=str(path), estimate=p.estimate, reference=True)
                        for p in ref.profiles]
    wl = load_workload(workload) if workload is not None else None
    if wl is not None:
        ev.workload, ev.workload_path = wl, str(workload)
    if wl is None and ev.workload is None:
        raise UserError("give the workload profile: specwise decide --workload FILE [EVIDENCE...] "
                        "(see examples/workload-profile.yaml)")
    decision, used = decide_with_evidence(wl, options=opts, evidence=ev)
    if output is not None:
        output.write_text(decision.model_dump_json(indent=2))
    if report is not None:
        _write_report(decision, used, report)
    if json_out:
        from specwise.cli.output import emit_json

        emit_json(decision)
        return
    render(decision)


def _write_report(decision, evidence, path: Path) -> None:
    """The report stage's writer (a missing `report` extra is a one-line error there)."""
    from specwise.cli.output import err_console
    from specwise.report import write_report

    for written in write_report(decision, evidence, path):
        err_console.print(f"report: {written}")


def render(decision, width: int = 80) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from specwise.cli.output import console
    from specwise.decide.rules_acceptance import acc

    out = console if console.is_terminal else Console(width=width, soft_wrap=False)
    w = min(out.width, width) if console.is_terminal else width
    out.print(Text(decision.headline, style=VERDICT_STYLE.get(decision.verdict, "bold")), width=w)
    out.print(Text(f"how firm: {decision.firmness} — {decision.firmness_note}", style="dim"), width=w)
    table = Table(width=w, show_lines=False, pad_edge=False, expand=True)
    table.add_column("rule", ratio=3, overflow="fold")
    table.add_column("", width=4, no_wrap=True)
    table.add_column(Text("observed vs threshold [source] → meaning"), ratio=9, overflow="fold")
    for f in decision.rules:
        src = f" [{f.source.value if hasattr(f.source, 'value') else f.source}]" if f.source else ""
        body = Text(f.message + src)
        if f.meaning:
            body.append("\n→ " + f.meaning, style="dim")
        table.add_row(f.rule or f.code, STATUS_STYLE.get(f.status or "", "-"), body)
    out.print(table, width=w)
    cfg = decision.config
    if cfg is not None:
        out.print(Text("ship (vLLM " + cfg.vllm_version + "): " + (cfg.vllm_command or "-"), style="bold"), width=w)
        if cfg.guard_schedule:
            out.print(f"guard ({cfg.guard_source}): {cfg.guard_schedule}" + (f" — {cfg.guard_tax_note}"
                                                                              if cfg.guard_tax_note else ""), width=w)
        if cfg.sglang_command:
            out.print(Text("SGLang: " + cfg.sglang_command), width=w)
    m = decision.monitor
    if m.break_even_acceptance is not None:
        weighted = next((f for f in decision.rules if f.code == "acceptance_weighted"), None)
        src = f" ({weighted.source.value if hasattr(weighted.source, 'value') else weighted.source})" \
            if weighted is not None and weighted.source else ""
        expected = "-" if m.expected_acceptance is None else f"{m.expected_acceptance:.2f}{src}"
        cross = (f"; crossover {m.crossover_qps:.2f} req/s ({m.crossover_source})" if m.crossover_qps else "")
        out.print(Text(f"monitor (accepted/drafted; break-even estimated from the step-time model at the peak "
                       f"batch): break-even {acc(m.break_even_acceptance)} (E[L] "
                       f"{m.break_even_acceptance_length:.2f}), alert below {acc(m.net_negative_acceptance)}, "
                       f"healthy above {acc(m.healthy_acceptance)}, expected {expected}{cross}"), width=w)
    for step in decision.next_steps:
        out.print(Text("next: " + step), width=w)

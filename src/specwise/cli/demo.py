"""``specwise demo``: the whole pipeline on built-in defaults, ending in a verdict and a report."""

from __future__ import annotations

from pathlib import Path

import typer

from specwise.schemas.limits import MAX_SEED


def demo(
    out: Path = typer.Option(Path("specwise-demo"), "--out", help="Directory for the demo's outputs; every run "
                             "gets its own timestamped subdirectory, so an earlier run is never overwritten."),
    # a demo cell longer than a minute would push the demo far past its two minutes
    duration: float = typer.Option(4.0, "--duration", min=1.0, max=60.0, help="Seconds of arrivals per bench cell "
                                   "(1-60)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
) -> None:
    """Plan 70B + 8B on 2x H100 (does not fit -> the FP8 alternative), simulate it, bench two in-process
    serve-sims over QPS x temperature, decide and write the report. No GPU, no server, no network."""
    import time

    from rich.markup import escape

    from specwise.cli.output import console
    from specwise.demo import DemoSettings, run_demo
    from specwise.demo.pipeline import DEMO_NOTE

    start = time.perf_counter()
    result = run_demo(DemoSettings(out=out, bench_duration_s=duration, seed=seed),
                      say=lambda text: console.print(text, soft_wrap=True, markup=False, highlight=False))
    d = result.decision
    console.print(f"\n[bold]Verdict: {escape(d.headline)}[/bold] ({d.firmness} evidence)", soft_wrap=True,
                  highlight=False)
    console.print(DEMO_NOTE, soft_wrap=True, highlight=False, style="dim")
    console.print(f"Report: {result.report.resolve()} (and .md, .json beside it)", soft_wrap=True, highlight=False)
    console.print(f"All outputs: {result.run_dir}; wall time {time.perf_counter() - start:.1f} s "
                  f"(" + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items() if k != "total") + ")",
                  soft_wrap=True, highlight=False)

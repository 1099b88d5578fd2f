"""``specwise report``: render a decision and its evidence as one self-contained HTML page (+ Markdown, JSON)."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    inputs: list[Path] = typer.Argument(..., help="Decision JSON, RunResult JSON files or run directories "
                                        "(simulated or measured), plan JSON, acceptance profile or estimate JSON, "
                                        "workload profile (YAML/JSON), monitor recordings (JSONL)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write; the Markdown and JSON "
                             "versions go beside it with the same stem (.md, .json)."),
    markdown: Path = typer.Option(None, "--markdown", help="Markdown file (default: OUT with .md)."),
    json_path: Path = typer.Option(None, "--json-out", help="JSON file (default: OUT with .json)."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Also read the evidence files a decision "
                                "lists (its evidence paths that exist and were not given)."),
) -> None:
    """One HTML page: the verdict and rule table first, then speedup, latency, acceptance and memory charts,
    and the exact commands and versions behind every input. No network, no scripts."""
    from specwise.cli.output import console
    from specwise.errors import UserError
    from specwise.report import load_inputs, write_report

    if out.suffix.lower() not in (".html", ".htm", ".md"):
        raise UserError(f"--out {out}: give an .html (or .md) file; the other versions are written beside it")
    loaded = load_inputs(list(inputs), follow_decision=follow)
    paths = write_report(loaded.decision, loaded, out, markdown=markdown, json_path=json_path)
    verdict = loaded.decision.verdict.replace("_", " ") if loaded.decision else "no decision among the inputs"
    console.print(f"[bold]{verdict}[/bold]")
    console.print("report: " + ", ".join(str(p) for p in paths), soft_wrap=True)

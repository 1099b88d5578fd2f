"""Shared rendering helpers: JSON output for scripts, rich console for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Write ``obj`` (a pydantic model or plain data) as JSON to stdout."""
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json(indent=2)
    else:
        text = json.dumps(obj, indent=2, default=_default)
    sys.stdout.write(text + "\n")


def _default(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(o)!r}")


def fmt_s(value: float | None, unit: str = "ms") -> str:
    """Format seconds as ms (or s) for tables; '-' for missing."""
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1e3:.1f}"
    return f"{value:.3f}"


def fmt_speedup(value: float | None) -> str:
    """Speedup with its sign made obvious: green 'x1.42 faster', red 'x0.81 slower'."""
    if value is None:
        return "-"
    if value <= 0:
        # a zero baseline latency (e.g. a TPOT of 0 when a whole stream arrived in one read) has no ratio
        return "- (baseline 0)"
    if value >= 1.0:
        return f"[green]{value:.2f}x faster[/green]"
    return f"[red]{1 / value:.2f}x slower[/red]"

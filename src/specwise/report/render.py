"""Rendering the report: one self-contained HTML page, a Markdown twin and a JSON document.

The HTML comes from a jinja2 template with autoescaping on, so every user-supplied string (model names,
labels, prompts, commands) is escaped; the only unescaped content is the SVG matplotlib wrote, whose text it
escapes itself. The page has no scripts and a Content-Security-Policy that forbids loading anything, so it
reads the same offline, in a mail attachment or with JavaScript off.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path
from typing import Any

from specwise import __version__
from specwise.errors import MissingExtraError
from specwise.report.inputs import ReportInputs
from specwise.report.plots import Plot, build_plots
from specwise.report.provenance import InputRow, provenance_rows

__all__ = ["Report", "build_report", "render_html", "render_json", "render_markdown", "write_outputs"]

_TEMPLATE = "report.html.j2"


class Report:
    """The inputs with everything derived from them that the three outputs share."""

    def __init__(self, inputs: ReportInputs, plots: list[Plot], provenance: list[InputRow]) -> None:
        self.inputs = inputs
        self.plots = plots
        self.provenance = provenance
        self.generated_at = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    @property
    def decision(self):
        return self.inputs.decision

    def missing_plots(self) -> list[str]:
        have = {p.id for p in self.plots}
        why = {
            "speedup": "speedup vs load (needs run results with comparisons)",
            "latency": "latency vs load (needs run results with cells)",
            "acceptance": "acceptance vs temperature (needs an acceptance profile, an estimate or a speculative run)",
            "histogram": "per-request acceptance (needs a run directory with records.jsonl or a run's "
                         "acceptance_breakdown)",
            "memory": "memory split (needs a plan: specwise plan --json)",
        }
        return [text for key, text in why.items() if key not in have]

    def run_findings(self) -> list[tuple[str, str, str]]:
        """(run, severity, sentence) of every run finding; version-1 sentences have no severity ('info')."""
        out = []
        for run in self.inputs.runs:
            for f in run.result.findings:
                out.append((f"{run.source} {run.path or ''}".strip(), str(getattr(f, "severity", "info")), str(f)))
        return out

    def monitor_rows(self) -> list[tuple[str, str, str]]:
        d = self.decision
        if d is None:
            return []
        m = d.monitor
        rows = []
        defs = {
            "k": "draft tokens per step (num_speculative_tokens)",
            "break_even_acceptance": "acceptance (accepted / drafted) below which speculation is slower",
            "break_even_acceptance_length": "the same as mean acceptance length (tokens per step, bonus included)",
            "healthy_acceptance": "above it speculation clearly pays",
            "net_negative_acceptance": "below it speculation clearly costs: alert",
            "expected_acceptance": "what the evidence says production should see",
            "baseline_acceptance": "recorded reference for the > 5-point drop rule",
            "crossover_batch_size": "running requests above which speculation stops paying",
            "crossover_qps": "request rate above which speculation stops paying",
            "slo_p50_target_s": f"the SLO's P50 target ({m.slo_metric or 'metric'}), seconds",
            "slo_p99_target_s": f"the SLO's P99 target ({m.slo_metric or 'metric'}), seconds",
        }
        for key, text in defs.items():
            value = getattr(m, key)
            if value is None:
                continue
            src = m.crossover_source if key.startswith("crossover") and m.crossover_source else m.thresholds_source
            rows.append((key, _value(value), f"{text} (source: {getattr(src, 'value', src)})"))
        return rows

    def sections(self) -> list[tuple[str, str]]:
        out = [("verdict", "Verdict")]
        if self.decision is not None:
            out.append(("rules", "Rules"))
        out.append(("plots", "Evidence"))
        if self.run_findings():
            out.append(("findings", "Findings"))
        out.append(("inputs", "Inputs"))
        return out


def build_report(inputs: ReportInputs) -> Report:
    if inputs.workload is None and inputs.decision is not None and inputs.decision.workload is not None:
        inputs.workload = inputs.decision.workload  # the decision carries the workload it was decided for
    return Report(inputs, build_plots(inputs), provenance_rows(inputs))


def _value(v: Any, unit: str | None = None) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        text = f"{v:.4g}"
    elif isinstance(v, int):
        text = str(v)
    elif isinstance(v, list):
        text = ", ".join(_value(x) for x in v)
    else:
        return str(v)  # a sentence-like value carries its own unit
    return f"{text} {unit}" if unit else text


def _verdict(v: str) -> str:
    return v.replace("_", " ")


def _headline(decision: Any) -> str:
    """The headline without a leading verdict word (the badge says it already)."""
    text = decision.headline.strip()
    for prefix in (decision.verdict, _verdict(decision.verdict)):
        if text.upper().startswith(prefix.upper()):
            rest = text[len(prefix):].lstrip(" :-—")
            return rest[:1].upper() + rest[1:] if rest else text
    return text


def _firmness(f: str) -> str:
    return {"simulated_roofline": "simulated (roofline defaults, uncalibrated)",
            "simulated_calibrated": "simulated (step time calibrated on this GPU and vLLM version)"}.get(f, f)


def _env():
    try:
        import jinja2
    except ImportError:
        raise MissingExtraError("report", "the HTML report") from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("specwise.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = _value
    env.filters["verdict"] = _verdict
    env.filters["firmness"] = _firmness
    env.filters["headline"] = _headline
    return env


def render_html(report: Report) -> str:
    inputs = report.inputs
    return _env().get_template(_TEMPLATE).render(
        decision=inputs.decision, workload=inputs.workload, notes=inputs.notes, plots=report.plots, provenance=report.provenance,
        missing_plots=report.missing_plots(), run_findings=report.run_findings(),
        monitor_rows=report.monitor_rows(), sections=report.sections(), generated_at=report.generated_at,
        tool_version=__version__,
    )


def _md(text: Any) -> str:
    """A table-cell-safe Markdown string: HTML-escaped (a renderer would otherwise run it) and pipes escaped."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> list[str]:
    """A fenced code block that the text cannot close (renderers show its content literally, escaped)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text, fence]


def render_markdown(report: Report, html_name: str | None = None) -> str:
    d = report.decision
    lines = [f"# specwise report{': ' + _md(report.inputs.workload.name) if report.inputs.workload else ''}", ""]
    if d is not None:
        lines += [f"**{_verdict(d.verdict)}**: {_md(_headline(d))}", "",
                  *[f"> Note: {_md(n)}\n" for n in report.inputs.notes],
                  f"How firm: {_firmness(d.firmness)}{': ' + _md(d.firmness_note) if d.firmness_note else ''}", "",
                  "| rule | status | threshold | observed | source | meaning |", "|---|---|---|---|---|---|"]
        for f in d.rules:
            lines.append(f"| {_md(f.rule or f.code)} | {f.status or 'observation'} | {_md(_value(f.threshold, f.unit))} "
                         f"| {_md(_value(f.observed, f.unit))} | {f.source or '-'} | {_md(f.message)}"
                         f"{' → ' + _md(f.meaning) if f.meaning else ''} |")
        if d.next_steps:
            lines += ["", "## Next steps", ""]
            for step in d.next_steps:
                lines += [*_fence(step), ""]
        if d.config is not None:
            lines += ["", f"## Config to ship (vLLM {_md(d.config.vllm_version)})", "", *_fence(d.config.vllm_command)]
        rows = report.monitor_rows()
        if rows:
            lines += ["", "## Monitoring thresholds", "", "| threshold | value | definition |", "|---|---|---|"]
            lines += [f"| {a} | {_md(b)} | {_md(c)} |" for a, b, c in rows]
    else:
        lines += ["No decision among the inputs: run `specwise decide` for the verdict.", ""]
        lines += [f"> Note: {_md(n)}\n" for n in report.inputs.notes]
    lines += ["", "## Evidence", ""]
    if html_name:
        lines.append(f"The charts are in {_md(html_name)}.")
    for p in report.plots:
        lines += [f"- **{_md(p.title)}**: {_md(p.caption)}"]
    lines += ["", "## Inputs: commands and versions", "", "| input | path | source | what | command | versions |",
              "|---|---|---|---|---|---|"]
    for r in report.provenance:
        cmd = _md(r.command) if r.command else ""
        vers = ", ".join(f"{k} {v}" for k, v in r.versions.items())
        lines.append(f"| {r.kind} | `{_md(r.path)}` | {r.source} | {_md(r.description)} | {cmd} {_md(r.command_note)} "
                     f"| {_md(vers)} |")
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    """The report's content as data: the decision, the series behind every chart, and the provenance."""
    doc = {
        "report_version": 1,
        "tool_version": __version__,
        "generated_at": report.generated_at,
        "decision": report.decision.model_dump(mode="json") if report.decision else None,
        "notes": report.inputs.notes,
        "plots": [{"id": p.id, "title": p.title, "caption": p.caption, "data": p.data} for p in report.plots],
        "inputs": [r.__dict__ for r in report.provenance],
    }
    return json.dumps(doc, indent=2, default=str)


def write_outputs(report: Report, html_path: Path, md_path: Path | None = None,
                  json_path: Path | None = None) -> list[Path]:
    """Write the HTML and (by default beside it, same stem) the Markdown and JSON outputs.

    A path ending in .md or .json names that output; the HTML then goes beside it with the same stem.
    """
    if html_path.suffix.lower() in (".md", ".markdown") and md_path is None:
        md_path, html_path = html_path, html_path.with_suffix(".html")
    elif html_path.suffix.lower() == ".json" and json_path is None:
        json_path, html_path = html_path, html_path.with_suffix(".html")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    md_path = md_path or html_path.with_suffix(".md")
    json_path = json_path or html_path.with_suffix(".json")
    html_path.write_text(render_html(report), encoding="utf-8")
    md_path.write_text(render_markdown(report, html_path.name), encoding="utf-8")
    json_path.write_text(render_json(report), encoding="utf-8")
    return [html_path, md_path, json_path]

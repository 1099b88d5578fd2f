"""The rendered report: order, plots, escaping, self-containment, Markdown and JSON twins."""

from __future__ import annotations

import json
import re

from specwise.report import write_report
from specwise.report.inputs import ReportInputs, RunInput
from specwise.report.render import build_report, render_html

from . import builders as B
from .conftest import ALL_PLOTS, XSS


def test_every_user_string_is_escaped_in_html_markdown_and_json(hostile_report):
    html = hostile_report.read_text()
    assert "<script" not in html.lower()
    # the payload is there, as text, from the decision, the workload, a run path, a prompt and a chart legend
    assert html.count("&lt;script&gt;") >= 5
    svg_text = "".join(re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL))
    assert "cat &lt;script&gt;" in svg_text  # matplotlib escaped the profile category in the legend
    md = hostile_report.with_suffix(".md").read_text()
    # outside fenced code blocks (which renderers show literally) nothing is raw HTML
    prose = re.sub(r"^(`{3,})\n.*?\n\1$", "", md, flags=re.DOTALL | re.MULTILINE)
    assert "<script" not in prose.lower() and "&lt;script&gt;" in prose
    assert f"```\nvllm serve model {XSS} --tensor-parallel-size 2\n```" in md
    doc = json.loads(hostile_report.with_suffix(".json").read_text())
    assert XSS in doc["decision"]["headline"]  # JSON keeps the raw string: escaping is the renderer's job


def test_the_page_is_self_contained(hostile_report):
    html = hostile_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, flags=re.IGNORECASE)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # only in-page SVG references
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_verdict_and_rule_table_come_before_the_plots_in_the_issue_order(hostile_report):
    html = hostile_report.read_text()
    where = [html.index(marker) for marker in (
        'id="verdict-badge"', ">Rule table<", 'id="plot-speedup"', 'id="plot-latency"', 'id="plot-acceptance"',
        'id="plot-histogram"', 'id="plot-memory"', ">Inputs: commands and versions<")]
    assert where == sorted(where)
    assert ">BORDERLINE</span>" in html
    for plot in ALL_PLOTS:
        figure = re.search(rf'<figure id="plot-{plot}".*?</figure>', html, flags=re.DOTALL).group(0)
        assert "<svg" in figure and "<path" in figure and "<figcaption>" in figure


def test_rule_table_has_every_rule_with_threshold_observed_source_status():
    html = render_html(build_report(ReportInputs(decision=B.decision())))
    table = re.search(r"<table>.*?</table>", html, flags=re.DOTALL).group(0)
    assert table.count("<tr class=\"sev-") == 3
    assert '<td class="s-fail">fail</td>' in table and '<td class="s-unknown">unknown</td>' in table
    assert "0.7 of VRAM" in table and "0.41 of VRAM" in table and "measured" in table
    # no decision: the page says so and still renders the evidence
    html = render_html(build_report(ReportInputs(runs=[RunInput(path="r.json", result=B.run())])))
    assert "NO DECISION" in html and 'id="plot-speedup"' in html and "Not shown: memory split" in html


def test_speedup_plot_data_has_ci_band_crossover_and_both_sources(hostile_report):
    doc = json.loads(hostile_report.with_suffix(".json").read_text())
    speedup = next(p for p in doc["plots"] if p["id"] == "speedup")
    sources = {s["source"] for s in speedup["data"]["series"]}
    assert sources == {"measured", "simulated"}
    measured = next(s for s in speedup["data"]["series"] if s["source"] == "measured" and s["temperature"] == 0.0)
    assert measured["ci_low"][0] < measured["speedup"][0] < measured["ci_high"][0]
    assert measured["crossovers"][0]["value"] == 3.0


def test_histogram_uses_request_records_when_a_run_directory_has_them(hostile_report, tmp_path):
    doc = json.loads(hostile_report.with_suffix(".json").read_text())
    hist = next(p for p in doc["plots"] if p["id"] == "histogram")
    assert sorted(hist["data"]["temperatures"]) == ["0", "1"]
    assert len(hist["data"]["temperatures"]["0"]) == 20 and hist["data"]["break_even"] == 0.55
    # without records: the run's acceptance_breakdown percentiles
    _, _, js = write_report(None, ReportInputs(runs=[RunInput(path="r.json", result=B.run())]),
                               tmp_path / "r.html")
    hist = next(p for p in json.loads(js.read_text())["plots"] if p["id"] == "histogram")
    assert [b["p10"] for b in hist["data"]["breakdown"]] == [0.3, 0.3]


def test_provenance_lists_commands_and_versions(hostile_report):
    doc = json.loads(hostile_report.with_suffix(".json").read_text())
    kinds = [r["kind"] for r in doc["inputs"]]
    assert kinds[:2] == ["decision", "workload"] and kinds.count("plan") == 2 and kinds.count("run") == 2
    bench = next(r for r in doc["inputs"] if r["kind"] == "run" and r["source"] == "measured")
    assert bench["command"].startswith("specwise bench --baseline http://127.0.0.1:1 ")
    assert "--qps 1,2,4 --temperatures 0,1" in bench["command"]
    assert bench["versions"] == {"specwise": "0.1.0", "python": "3.11", "platform": "Linux"}
    plan = next(r for r in doc["inputs"] if r["kind"] == "plan")
    assert plan["command"].startswith("specwise plan --target meta-llama/Llama-3.1-70B-Instruct")


def test_headline_is_not_repeated_after_the_badge():
    d = B.decision()
    d.headline = "BORDERLINE: the interval includes 1.0"
    report = build_report(ReportInputs(decision=d, notes=["demo note"]))
    html = render_html(report)
    assert '<span class="headline">The interval includes 1.0</span>' in html
    from specwise.report.render import render_markdown

    md = render_markdown(report)
    assert md.startswith("# specwise report: chat\n\n**BORDERLINE**: The interval includes 1.0\n\n> Note: demo note\n")


def test_a_markdown_or_json_path_names_that_output_and_the_html_goes_beside_it(tmp_path):
    inputs = ReportInputs(decision=B.decision())
    paths = write_report(inputs.decision, inputs, tmp_path / "d.md")
    assert [p.name for p in paths] == ["d.html", "d.md", "d.json"]
    assert (tmp_path / "d.md").read_text().startswith("# specwise report")
    assert (tmp_path / "d.html").read_text().startswith("<!DOCTYPE html>")

"""Chart data: what each chart shows, and charts left out when their inputs are missing."""

from __future__ import annotations

import pytest

from specwise.report.inputs import ReportInputs, RunInput
from specwise.report.plots import acceptance_plot, build_plots, memory_plot, monitor_plot, speedup_plot

from . import builders as B


def test_memory_split_shows_the_plan_that_does_not_fit_and_its_alternative():
    plot = memory_plot(ReportInputs(plans=[(None, p) for p in B.plans()]))
    bars = plot.data["bars"]
    assert [(b["arm"], b["fits"]) for b in bars] == [("baseline", True), ("speculative", False),
                                                     ("baseline", True), ("speculative", True)]
    bf16_spec, fp8_spec = bars[1], bars[3]
    assert bf16_spec["kv_cache_gib"] < 0 < fp8_spec["kv_cache_gib"]
    assert fp8_spec["target_weights_gib_per_gpu"] < bf16_spec["target_weights_gib_per_gpu"]
    assert "does not fit" in plot.svg


def test_acceptance_chart_puts_estimated_and_measured_on_one_axis_with_break_even():
    inputs = ReportInputs(decision=B.decision(), profiles=[(None, B.profile())],
                          runs=[RunInput(path="m", result=B.run("measured"))])
    plot = acceptance_plot(inputs)
    sources = [s["source"] for s in plot.data["series"]]
    assert sources == ["assumed", "measured"] and plot.data["break_even"] == 0.55
    measured = plot.data["series"][1]
    assert measured["temperatures"] == [0.0, 1.0]
    assert measured["acceptance"] == pytest.approx([0.72, 0.47])  # /metrics acceptance of the speculative cells, per temperature
    assert "rule of thumb 0.65" in plot.svg and "break-even for this pair" in plot.svg


def test_speedup_chart_marks_the_peak_load_from_the_workload():
    inputs = ReportInputs(workload=B.workload(), runs=[RunInput(path="m", result=B.run("measured"))])
    assert "your peak load (3)" in speedup_plot(inputs).svg


def test_monitor_recordings_are_plotted_per_endpoint_against_break_even_and_load():
    from specwise.schemas.monitor import EndpointReading, Health

    def row(url, i, acc):
        return EndpointReading(url=url, t=1000.0 + i, ok=True, acceptance_rate=acc, running=4.0 + i,
                               health=Health(state="healthy", since=1000.0, held_s=i)).model_dump(mode="json")

    rows = [row("http://a", i, 0.6 - 0.01 * i) for i in range(5)] + [row("http://b", i, 0.4) for i in range(3)]
    rows.append({"url": "http://a", "t": 1.0, "ok": False})  # not a reading (no health): skipped
    plot = monitor_plot(ReportInputs(decision=B.decision(), monitor=[("mon.jsonl", rows)]))
    a, b = plot.data["series"]
    assert (a["url"], a["t_s"], a["running"][:2]) == ("http://a", [0, 1, 2, 3, 4], [4.0, 5.0])
    assert b["acceptance_rate"] == [0.4, 0.4, 0.4]
    assert plot.data["break_even"] == 0.55
    assert monitor_plot(ReportInputs(monitor=[("other.jsonl", [{"t": 1, "x": 2}])])) is None


def test_charts_without_inputs_are_left_out():
    assert build_plots(ReportInputs(decision=B.decision())) == []
    ids = [p.id for p in build_plots(ReportInputs(plans=[(None, B.plans()[1])]))]
    assert ids == ["memory"]


def test_latency_chart_draws_the_slo_target_on_the_metric_it_names():
    from specwise.report.plots import latency_plot

    wl = B.workload()
    wl.slo.p99_target = 9.0
    runs = [RunInput(path="m", result=B.run())]
    assert "SLO P99 target" in latency_plot(ReportInputs(workload=wl, runs=runs)).svg
    wl.slo.p99_target = None
    assert "SLO P99 target" not in latency_plot(ReportInputs(workload=wl, runs=runs)).svg

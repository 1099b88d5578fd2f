"""Reading run results: version-1 run directories and files convert, version 2 round-trips, bad input is one line."""

import json
from pathlib import Path

import pytest

from specwise.errors import UserError
from specwise.schemas import CellSummary, Comparison, RunResult, Source, SpeedupCI
from specwise.schemas.findings import Finding
from specwise.schemas.run_io import load_run_result

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def test_a_version_1_bench_run_directory_converts():
    result = load_run_result(RUNS / "v1-bench")
    assert result.schema_version == 2 and result.source == "measured"
    raw = json.loads((RUNS / "v1-bench" / "summary.json").read_text())
    assert [f.message for f in result.findings] == raw["findings"]
    assert all(f.code == "legacy" for f in result.findings)
    assert {role: s.role for role, s in result.servers.items()} == {"baseline": "baseline",
                                                                    "speculative": "speculative"}
    assert result.servers["speculative"].url == raw["servers"]["speculative"]["url"]
    assert result.inputs.bench == {k: v for k, v in raw["config"].items() if k != "sweep_rates_run"}
    assert result.inputs.workload is not None and result.inputs.workload.name == raw["config"]["workload"]
    assert [c.load for c in result.comparisons] == [c["qps"] for c in raw["comparisons"]]


def test_a_version_1_simulate_file_converts_to_typed_inputs():
    result = load_run_result(RUNS / "v1-simulate.json")
    assert result.source == "simulated"
    spec = result.inputs.deployment["speculative"]
    assert spec.target == "meta-llama/Llama-3.1-8B-Instruct" and spec.method == "eagle3"
    assert result.inputs.acceptance is not None and result.inputs.acceptance.source == "assumed"
    assert result.inputs.step_time is not None and result.inputs.k == 3
    assert result.servers["speculative"].engine_generation == "simulated"
    assert any("simulated crossover" in f or "recommended guard" in f for f in result.findings)


def test_simulated_and_measured_results_load_side_by_side():
    """No source-specific code: the same loop reads both."""
    rows = []
    for path in (RUNS / "v1-bench", RUNS / "v1-simulate.json"):
        r = load_run_result(path)
        rows += [(r.source, c.load_kind, c.load, c.speedup_e2e_p50.value) for c in r.comparisons]
    assert {s for s, *_ in rows} == {"measured", "simulated"}
    assert all(kind == "qps" and load is not None and value is not None for _, kind, load, value in rows)


def test_version_2_round_trips_and_sentences_become_findings(tmp_path):
    sp = SpeedupCI(value=1.2)
    result = RunResult(source=Source.simulated, tool_version="t",
                       cells=[CellSummary(role="baseline", source=Source.simulated, qps=None, load_kind="concurrency",
                                          load=8)],
                       comparisons=[Comparison(qps=None, load_kind="concurrency", load=8, speedup_tpot_p50=sp,
                                               speedup_tpot_p99=sp, speedup_e2e_p50=sp, speedup_e2e_p99=sp)],
                       findings=["NOT LOSSLESS: outputs differ", Finding(code="x", message="typed")])
    assert [f.severity for f in result.findings] == ["blocking", "info"]
    path = tmp_path / "run.json"
    path.write_text(result.model_dump_json())
    again = load_run_result(path)
    assert again == result and again.comparisons[0].load == 8


@pytest.mark.parametrize("content, message", [
    (None, "no summary.json"),
    ("{", "not a JSON run result"),
    ('{"a": 1}', "not a specwise RunResult"),
    ('{"source": "measured", "tool_version": "t", "schema_version": 3}', "schema_version 3"),
    ('{"source": "measured", "tool_version": "t", "schema_version": 2, "cells": 5}', "not a valid RunResult"),
])
def test_bad_run_results_are_one_line_errors(tmp_path, content, message):
    path = tmp_path
    if content is not None:
        path = tmp_path / "x.json"
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_run_result(path)

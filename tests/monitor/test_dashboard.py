"""The Grafana dashboard `specwise monitor dashboard` emits: built by grafana-foundation-sdk, importable JSON with the
live view's panels, the load axis, the threshold lines from the decision, and the data-source / model variables."""

from __future__ import annotations

import json

import pytest

from specwise.monitor.dashboard import DASHBOARD_UID, dashboard_json
from specwise.monitor.thresholds import resolve_thresholds


TH = resolve_thresholds(break_even=0.55, net_negative=0.5, healthy=0.62, baseline=0.8, crossover_batch=12,
                        crossover_qps=3, slo_tpot_p99_s=0.06)


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(dashboard_json(TH))


def _panels(board: dict) -> dict[str, dict]:
    return {p["title"]: p for p in board["panels"] if p["type"] != "row"}


def _steps(panel: dict) -> list:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_variables_pick_the_prometheus_and_the_model(board):
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    model = variables["model_name"]
    assert model["type"] == "query" and model["datasource"]["uid"] == "${datasource}"
    assert "label_values(" in model["query"] and model["multi"] and model["includeAll"]
    for panel in _panels(board).values():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            if "vllm:" in target["expr"]:
                assert 'model_name=~"$model_name"' in target["expr"], target["expr"]


def test_live_view_panels_and_the_load_axis(board):
    panels = _panels(board)
    for title in ("Acceptance rate (windowed)", "Mean acceptance length", "Per-position acceptance", "Token flow",
                  "KV-cache usage", "TTFT P50 / P95 / P99", "TPOT P50 / P95 / P99", "E2E latency P50 / P95 / P99",
                  "Running requests vs crossover batch", "Observed vs expected acceptance",
                  "TPOT P50/P99 gap over time", "Acceptance vs running requests (load axis)"):
        assert title in panels, title
    xy = panels["Acceptance vs running requests (load axis)"]
    assert xy["type"] == "xychart" and xy["options"]["dims"]["x"] == "running"
    assert {t["legendFormat"] for t in xy["targets"]} == {"running", "acceptance"}
    assert xy["transformations"][0]["id"] == "joinByField"
    acc = panels["Acceptance rate (windowed)"]["targets"][0]["expr"]
    assert "rate(vllm:spec_decode_num_accepted_tokens_total" in acc and "num_draft_tokens_total" in acc
    gap = panels["TPOT P50/P99 gap over time"]["targets"]
    assert "histogram_quantile(0.99" in gap[0]["expr"] and "histogram_quantile(0.5" in gap[0]["expr"]


def test_threshold_lines_come_from_the_thresholds(board):
    panels = _panels(board)
    acc = panels["Acceptance rate (windowed)"]
    assert _steps(acc) == [None, 0.5, 0.55, 0.62]
    assert acc["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
    assert _steps(panels["Running requests vs crossover batch"]) == [None, 12]
    assert _steps(panels["Request rate vs crossover load"]) == [None, 3]
    assert _steps(panels["TPOT P50 / P95 / P99"]) == [None, 0.06]
    expected = panels["Observed vs expected acceptance"]["targets"]
    assert expected[1]["expr"] == "vector(0.8)" and expected[1]["legendFormat"] == "recorded baseline"


def test_identity_and_rule_of_thumb_label(board):
    assert board["uid"] == DASHBOARD_UID and "specwise" in board["tags"]
    thumb = json.loads(dashboard_json(resolve_thresholds()))
    assert "rule of thumb" in thumb["description"]
    assert "Running requests vs crossover batch" in _panels(thumb)  # still shown, without a line
    assert "thresholds" not in _panels(thumb)["Running requests vs crossover batch"]["fieldConfig"]["defaults"]

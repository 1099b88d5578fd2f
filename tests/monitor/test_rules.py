"""The emitted Prometheus rules pass the real `promtool check rules`, and `promtool test rules` shows each alert firing
on series that cross its threshold and staying silent on series that do not.

promtool comes from Debian's `prometheus` package (`make promtool` installs it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from specwise.monitor.rules import ALERT_NAMES, RuleOptions, rules_document, rules_yaml
from specwise.monitor.thresholds import resolve_thresholds

PROMTOOL = shutil.which("promtool") or ""


@pytest.fixture
def promtool() -> str:
    # `make test` installs it, so a missing promtool is a broken environment, not a reason to skip
    if not PROMTOOL:
        pytest.fail("promtool not found on PATH: run `make promtool` (apt-get install prometheus, Debian's package)")
    return PROMTOOL

TH = resolve_thresholds(break_even=0.6, net_negative=0.5, healthy=0.65, baseline=0.8, crossover_batch=8,
                        crossover_qps=4, slo_tpot_p99_s=0.05, slo_ttft_p99_s=1.0)
OPTS = RuleOptions(for_minutes=10, window="5m")
COMMON = {"component": "speculative-decoding", "thresholds_source": "flags", "job": "vllm"}
TPOT_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.5, "+Inf")


def _model(name: str, *, accepted: float, drafted: float = 100, running: float = 4, finished: float = 60,
           kv: float = 0.5, waiting: str = "3+0x40", tpot_bucket: float = 0.025, ttft_bucket: float = 0.1) -> list:
    """Input series of one model (per minute increments), labelled like vLLM V1 (model_name, engine)."""
    lab = f'model_name="{name}",engine="0",job="vllm",instance="{name}:8000"'
    out = [
        {"series": f"vllm:spec_decode_num_accepted_tokens_total{{{lab}}}", "values": f"0+{accepted:g}x40"},
        {"series": f"vllm:spec_decode_num_draft_tokens_total{{{lab}}}", "values": f"0+{drafted:g}x40"},
        {"series": f"vllm:spec_decode_num_drafts_total{{{lab}}}", "values": f"0+{drafted / 4:g}x40"},  # k = 4
        {"series": f"vllm:num_requests_running{{{lab}}}", "values": f"{running:g}+0x40"},
        {"series": f"vllm:num_requests_waiting{{{lab}}}", "values": waiting},
        {"series": f"vllm:request_success_total{{{lab},finished_reason=\"stop\"}}", "values": f"0+{finished:g}x40"},
        {"series": f"vllm:kv_cache_usage_perc{{{lab}}}", "values": f"{kv:g}+0x40"},
    ]
    for le in TPOT_BUCKETS:
        inc = 100 if le == "+Inf" or le >= tpot_bucket else 0
        out.append({"series": f'vllm:request_time_per_output_token_seconds_bucket{{{lab},le="{le}"}}',
                    "values": f"0+{inc}x40"})
    for le in (0.1, 0.5, 1.0, 2.5, "+Inf"):
        inc = 100 if le == "+Inf" or le >= ttft_bucket else 0
        out.append({"series": f'vllm:time_to_first_token_seconds_bucket{{{lab},le="{le}"}}', "values": f"0+{inc}x40"})
    return out


# name -> (series, alerts that must fire, with the value the alert's summary prints)
MODELS = {
    "good": (_model("good", accepted=78), {}),  # healthy, light load, fast: nothing fires
    "marginal": (_model("marginal", accepted=55), {"SpecDecodeAcceptanceBelowBreakEven": 0.55,
                                                   "SpecDecodeAcceptanceDropVsBaseline": 0.55}),
    "bad": (_model("bad", accepted=40), {"SpecDecodeAcceptanceBelowBreakEven": 0.4,
                                         "SpecDecodeAcceptanceNetNegative": 0.4,
                                         "SpecDecodeAcceptanceDropVsBaseline": 0.4}),
    "slip": (_model("slip", accepted=72), {"SpecDecodeAcceptanceDropVsBaseline": 0.72}),  # healthy but 8 pts down
    "busy": (_model("busy", accepted=78, running=12, finished=300, kv=0.98, waiting="0+2x40", tpot_bucket=0.1,
                    ttft_bucket=2.5),
             {"SpecDecodeOverCrossoverBatch": 12, "SpecDecodeOverCrossoverRate": 5, "VLLMKVCacheSaturated": 0.98,
              "VLLMQueueGrowing": 2 / 60, "SpecDecodeTPOTAboveSLO": 0.075 + 0.025 * 0.99,
              "SpecDecodeTTFTAboveSLO": 1.0 + 1.5 * 0.99}),
    # heavy load but the guard switched speculation off: no drafts -> no crossover or acceptance alert (0/0 = NaN)
    "guarded": (_model("guarded", accepted=0, drafted=0, running=12), {}),
}


def _rule(name: str) -> dict:
    for group in rules_document(TH, OPTS)["groups"]:
        for r in group["rules"]:
            if r.get("alert") == name:
                return r
    raise KeyError(name)


def _expected(alert: str, model: str, value: float) -> dict:
    rule = _rule(alert)
    text = rule["annotations"]["summary"].replace("{{ $labels.model_name }}", model).replace(
        "{{ $labels.instance }}", f"{model}:8000").replace('{{ $value | printf "%.3f" }}', f"{value:.3f}")
    return {"exp_labels": {**COMMON, "severity": rule["labels"]["severity"], "model_name": model,
                           "instance": f"{model}:8000"},
            "exp_annotations": {**rule["annotations"], "summary": text}}


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "specwise-rules.yml"
    path.write_text(rules_yaml(TH, OPTS))
    return path


def test_promtool_check_rules(rules_file, promtool):
    done = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERT_NAMES) + 11} rules found" in done.stdout


def test_every_alert_is_emitted_and_exercised():
    emitted = {r["alert"] for g in rules_document(TH, OPTS)["groups"] for r in g["rules"] if "alert" in r}
    assert emitted == set(ALERT_NAMES)
    exercised = {a for _, fires in MODELS.values() for a in fires}
    assert exercised == set(ALERT_NAMES)


def test_promtool_test_rules_fire_exactly_where_thresholds_are_crossed(rules_file, tmp_path, promtool):
    series = [s for model_series, _ in MODELS.values() for s in model_series]
    alert_tests = []
    for alert in ALERT_NAMES:
        # 9m: the condition has held for less than `for: 10m` (pending); 25m: firing for exactly the crossing models
        alert_tests.append({"eval_time": "9m", "alertname": alert, "exp_alerts": []})
        alert_tests.append({"eval_time": "25m", "alertname": alert, "exp_alerts": [
            _expected(alert, model, fires[alert]) for model, (_, fires) in MODELS.items() if alert in fires]})
    recorded = [
        {"expr": 'specwise:spec_decode_acceptance_rate:5m{model_name="good"}', "eval_time": "25m",
         "exp_samples": [{"labels": 'specwise:spec_decode_acceptance_rate:5m{job="vllm",instance="good:8000",'
                                    'model_name="good"}', "value": 0.78}]},
        {"expr": 'specwise:spec_decode_mean_acceptance_length:5m{model_name="good"}', "eval_time": "25m",
         "exp_samples": [{"labels": 'specwise:spec_decode_mean_acceptance_length:5m{job="vllm",instance="good:8000",'
                                    'model_name="good"}', "value": 1 + 78 / 25}]},
    ]
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [str(rules_file)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alert_tests,
                   "promql_expr_test": recorded}],
    }, sort_keys=False, width=1000))
    done = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "SUCCESS" in done.stdout


def test_without_baseline_crossover_or_slo_those_rules_are_left_out_and_said_so():
    th = resolve_thresholds()
    text = rules_yaml(th)
    alerts = {r["alert"] for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {"SpecDecodeAcceptanceBelowBreakEven", "SpecDecodeAcceptanceNetNegative",
                      "VLLMKVCacheSaturated", "VLLMQueueGrowing"}
    assert "rule of thumb" in text and "drop rule is left out" in text and "SLO rules are left out" in text
    assert 'thresholds_source: rule_of_thumb' in text


def test_selector_reaches_every_vllm_series():
    doc = rules_document(TH, RuleOptions(selector='job="vllm-prod"'))
    for g in doc["groups"]:
        for r in g["rules"]:
            if "vllm:" in r["expr"]:
                assert r["expr"].count("vllm:") == r["expr"].count('{job="vllm-prod"}'), r["expr"]


def test_cli_rules_and_dashboard_from_a_decision_file(tmp_path, promtool):
    import json
    import sys

    from specwise.schemas.decision import Decision, MonitorThresholds

    decision = tmp_path / "decision.json"
    decision.write_text(Decision(
        tool_version="0", created_at="2026-01-01T00:00:00Z", verdict="ENABLE_WITH_GUARD", headline="h",
        firmness="simulated_calibrated", monitor=MonitorThresholds(
            k=3, break_even_acceptance=0.41, net_negative_acceptance=0.36, healthy_acceptance=0.5,
            baseline_acceptance=0.7, crossover_batch_size=24, slo_metric="ttft", slo_p99_target_s=2.0),
    ).model_dump_json())
    rules = tmp_path / "rules.yml"
    done = subprocess.run([sys.executable, "-m", "specwise", "monitor", "rules", "--decision", str(decision),
                           "-o", str(rules), "--for", "15"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True).returncode == 0
    doc = yaml.safe_load(rules.read_text())
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert alerts["SpecDecodeAcceptanceBelowBreakEven"]["expr"].endswith("< 0.41")
    assert alerts["SpecDecodeAcceptanceNetNegative"]["expr"].endswith("< 0.36")
    assert alerts["SpecDecodeAcceptanceDropVsBaseline"]["expr"].endswith("< 0.65")
    assert "> 24 and on" in alerts["SpecDecodeOverCrossoverBatch"]["expr"]
    assert alerts["SpecDecodeTTFTAboveSLO"]["expr"].endswith("> 2") and "SpecDecodeTPOTAboveSLO" not in alerts
    assert {r["for"] for r in alerts.values()} == {"15m"}
    assert {r["labels"]["thresholds_source"] for r in alerts.values()} == {"decision"}
    done = subprocess.run([sys.executable, "-m", "specwise", "monitor", "dashboard", "--decision", str(decision)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout)
    acc = next(p for p in board["panels"] if p["title"] == "Acceptance rate (windowed)")
    assert [s["value"] for s in acc["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.36, 0.41, 0.5]

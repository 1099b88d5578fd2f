"""Parsing and deltas on /metrics fixtures constructed from the documented exposition (fixtures/README.md)."""

from pathlib import Path

import httpx
import pytest

from specwise.metrics.adapters import (
    EngineFlavor,
    GaugeSample,
    counter_delta,
    delta,
    detect_flavor,
    kv_cache_capacity_tokens,
    sample_gauges,
    summarize_gauges,
)
from specwise.metrics.prometheus import MetricsUnavailable, metrics_url, parse_metrics_text, scrape_metrics

FIX = Path(__file__).parent / "fixtures"


def snap(name: str, t: float = 0.0):
    return parse_metrics_text((FIX / name).read_text(), taken_at=t)


def test_parse_keeps_exposed_total_names_and_drops_created():
    s = snap("vllm_v1_before.prom")
    assert s.has("vllm:spec_decode_num_drafts_total")
    assert not any(n.endswith("_created") for n in s.samples)
    assert s.total("vllm:spec_decode_num_drafts_total") == 150.0  # summed over engine 0 and 1
    assert s.total("vllm:spec_decode_num_drafts_total", engine="1") == 50.0
    assert s.types["vllm:spec_decode_num_drafts"] == "counter"


def test_malformed_exposition_is_a_metrics_unavailable():
    with pytest.raises(MetricsUnavailable):
        parse_metrics_text("vllm:foo{engine=\"0\" 1.0\n")


def test_detect_flavor_per_version():
    assert detect_flavor(snap("vllm_v1_after.prom")) is EngineFlavor.vllm_v1
    assert detect_flavor(snap("vllm_v1_083.prom")) is EngineFlavor.vllm_v1_083
    assert detect_flavor(snap("vllm_v0_after.prom")) is EngineFlavor.vllm_v0
    assert detect_flavor(snap("sglang.prom")) is EngineFlavor.sglang
    assert detect_flavor(parse_metrics_text("")) is EngineFlavor.unknown
    no_spec = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\"} 1\n"
    assert detect_flavor(parse_metrics_text(no_spec)) is EngineFlavor.vllm_no_spec


def test_v1_delta_sums_engines_and_gives_vllm_formulas():
    d = delta(snap("vllm_v1_before.prom", 0.0), snap("vllm_v1_after.prom", 10.0))
    s = d.spec
    assert d.flavor == EngineFlavor.vllm_v1 and d.window_s == 10.0
    assert (s.drafts, s.draft_tokens, s.accepted) == (300.0, 900.0, 420.0)
    assert s.semantics == "v1_accepted_prefix"
    assert s.acceptance_rate == pytest.approx(420 / 900)
    assert s.mean_acceptance_length == pytest.approx(1 + 420 / 300)
    assert s.k == 3
    assert s.per_position == pytest.approx([230 / 300, 124 / 300, 66 / 300])
    assert d.generation_tokens == 1500.0
    assert not d.counter_reset


def test_counter_decrease_is_a_reset_not_a_negative_delta():
    before, after = snap("vllm_v1_before.prom"), snap("vllm_v1_reset_after.prom")
    value, reset = counter_delta(before, after, "vllm:spec_decode_num_drafts_total")
    assert reset and value == pytest.approx(15.0)  # post-restart values 10 + 5
    d = delta(before, after)
    assert d.counter_reset and d.spec.counter_reset
    assert d.spec.acceptance_rate == pytest.approx(21 / 45)
    assert any("restart" in n for n in d.notes)


def test_v0_rate_is_labelled_all_positions_and_mean_length_converted():
    d = delta(snap("vllm_v0_before.prom"), snap("vllm_v0_after.prom"), k=4)
    s = d.spec
    assert s.semantics == "v0_all_positions"
    assert s.acceptance_rate == pytest.approx(220 / 400)
    # V1-comparable: emitted/(draft/k) = 250/100 = 2.5 tokens per step = efficiency*(k+1)
    assert s.efficiency == pytest.approx(250 / (100 * 5))
    assert s.mean_acceptance_length == pytest.approx(2.5)
    assert s.acceptance_rate_prefix_equivalent == pytest.approx(250 / 400 - 1 / 4)
    assert s.acceptance_rate_prefix_equivalent < s.acceptance_rate
    assert "inflated" in s.semantics_text


def test_v0_without_k_says_so():
    d = delta(snap("vllm_v0_before.prom"), snap("vllm_v0_after.prom"))
    assert d.spec.mean_acceptance_length is None
    assert any("k" in n for n in d.spec.notes)


def test_v1_083_needs_k_for_mean_length():
    empty = parse_metrics_text("")
    d = delta(empty, snap("vllm_v1_083.prom"))
    assert d.spec.acceptance_rate == pytest.approx(0.6) and d.spec.mean_acceptance_length is None
    d = delta(empty, snap("vllm_v1_083.prom"), k=4)
    assert d.spec.mean_acceptance_length == pytest.approx(1 + 240 * 4 / 400)


def test_sglang_delta_uses_generation_per_verify_call():
    before = parse_metrics_text("")
    d = delta(before, snap("sglang.prom"), k=4)
    assert d.flavor == EngineFlavor.sglang
    assert d.spec.mean_acceptance_length == pytest.approx(3.0)
    assert d.spec.acceptance_rate == pytest.approx(0.5)


def test_gauges_and_saturation_slope():
    g = sample_gauges(snap("vllm_v1_after.prom"), t=1.0)
    assert g.kv_cache_usage == pytest.approx(0.3)  # mean over engines
    assert g.num_requests_running == 14.0 and g.num_requests_waiting == 4.0
    assert sample_gauges(snap("vllm_v1_083.prom")).kv_cache_usage == 0.25  # pre-0.9.2 name
    assert sample_gauges(snap("sglang.prom")).num_requests_running == 3.0
    growing = summarize_gauges([GaugeSample(t=t, num_requests_waiting=2 * t) for t in range(5)])
    assert growing.waiting_slope_per_s == pytest.approx(2.0) and growing.waiting_max == 8
    assert kv_cache_capacity_tokens(snap("vllm_v1_before.prom")) == 2 * 1000 * 16


def test_metrics_url():
    assert metrics_url("http://h:8000/v1/") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000") == "http://h:8000/metrics"


async def test_scrape_refused_is_metrics_unavailable():
    with pytest.raises(MetricsUnavailable, match="failed"):
        await scrape_metrics("http://127.0.0.1:9", timeout_s=1.0)


async def test_scrape_404_is_metrics_unavailable():
    transport = httpx.MockTransport(lambda req: httpx.Response(404))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(MetricsUnavailable, match="404"):
            await scrape_metrics("http://x", client=client)


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 40, ""])
def test_unreadable_position_labels_are_skipped_with_a_note(bad):
    def with_bad(name, t):
        text = (FIX / name).read_text()
        extra = f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",position="{bad}"}} 7\n'
        return parse_metrics_text(text + extra, taken_at=t)

    d = delta(with_bad("vllm_v1_before.prom", 0.0), with_bad("vllm_v1_after.prom", 10.0))
    assert d.spec.per_position == pytest.approx([230 / 300, 124 / 300, 66 / 300]) and d.spec.k == 3
    assert any("unreadable position label" in n for n in d.spec.notes)

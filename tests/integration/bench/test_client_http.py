"""Client over real HTTP against tests/bench/sse_server.py (a real aiohttp server on 127.0.0.1)."""

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from specwise.bench.sse import parse_stream
from specwise.bench.workloads import Message, Prompt, RequestSpec
from specwise.errors import UserError

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration


def _req(i=0, max_tokens=10, temperature=0.0):
    p = Prompt(prompt_id=f"p{i}", category="chat", messages=[Message(role="user", content="hi")])
    return RequestSpec(index=i, request_id=f"r{i}", prompt=p, category="chat", max_tokens=max_tokens,
                       temperature=temperature, seed=5)


async def _send(server, api="chat", **cfg):
    config = ClientConfig(base_url=server.url + "/v1", model="test-model", api=api, timeout_s=2.0, **cfg)
    async with StreamingClient(config) as c:
        return await c.send(_req(), role="speculative", max_tokens_per_step=4)


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_multi_token_chunks_counted_exactly_from_usage(api):
    with SSEServer(ServerBehaviour(tokens_per_chunk=[3, 2, 4])) as srv:
        out = await _send(srv, api=api)
    r = out.record
    assert r.ok and r.finish_reason == "length"
    assert r.token_count_method == "usage"
    assert r.chunk_tokens == [1, 3, 2, 4]  # prefill token, then 1 + accepted per step
    assert r.output_tokens == 10 and r.prompt_tokens == 7
    assert r.ttft_s is not None and r.ttft_s >= 0.004 and r.e2e_s > r.ttft_s
    assert len(r.chunk_offsets_s) == 4 and r.chunk_estimate_safe
    assert out.text.startswith("t0 t1 t2 t3")
    body = srv.bodies[0]
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


async def test_token_ids_fallback_and_per_request_spec_metrics():
    with SSEServer(ServerBehaviour(tokens_per_chunk=[4, 1], per_request_spec=True)) as srv:
        out = await _send(srv, token_counting="token_ids")
    r = out.record
    assert r.token_count_method == "token_ids" and r.chunk_tokens == [1, 4, 1, 4]
    assert out.token_ids == list(range(10))
    assert r.server_spec.num_spec_tokens == 3 and r.server_spec.num_spec_steps == 3
    assert r.server_spec.draft_acceptance_rate == pytest.approx(6 / 9)
    assert r.server_spec.per_step_accepted == [3, 0, 3]


async def test_merged_chunks_are_flagged_unsafe():
    with SSEServer(ServerBehaviour(tokens_per_chunk=[6])) as srv:  # more than k+1=4 per chunk
        out = await _send(srv)
    assert out.record.ok and not out.record.chunk_estimate_safe


@pytest.mark.parametrize("fault,kind", [
    ("http_500", "http_500"), ("truncate", "truncated_stream"), ("malformed", "malformed_sse"),
    ("drop", None), ("slow", "timeout"), ("stream_error", "stream_error"),
])
async def test_faults_are_records_not_exceptions(fault, kind):
    with SSEServer(ServerBehaviour(fault=fault, tokens_per_chunk=[2])) as srv:
        out = await _send(srv)
    r = out.record
    assert not r.ok and r.error
    if kind:
        assert r.error_kind == kind
    else:  # a dropped connection shows up as a disconnect or a truncated stream, depending on timing
        assert r.error_kind in ("disconnected", "truncated_stream")


async def test_connection_closed_before_any_byte_is_retried_once():
    with SSEServer(ServerBehaviour(tokens_per_chunk=[3, 2, 4], fault="close_first")) as srv:
        out = await _send(srv)
        assert srv.requests == 2
    assert out.record.ok, out.record.error
    assert out.record.output_tokens > 0


async def test_connection_refused():
    srv = SSEServer()
    out = await _send(srv)  # never started
    assert out.record.error_kind == "connection_refused"


async def test_api_key_from_env_only_in_header(monkeypatch):
    monkeypatch.setenv("SPECWISE_TEST_KEY", "sk-secret")
    with SSEServer() as srv:
        out = await _send(srv, api_key_env="SPECWISE_TEST_KEY")
    assert out.record.ok
    assert "sk-secret" not in out.record.model_dump_json()
    monkeypatch.delenv("SPECWISE_TEST_KEY")
    with pytest.raises(UserError, match="SPECWISE_TEST_KEY"):
        StreamingClient(ClientConfig(base_url="http://x", model="m", api_key_env="SPECWISE_TEST_KEY"))


def test_parse_stream_text_fallback_is_unsafe_and_role_chunk_skipped():
    lines = [
        (0.01, b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n'),
        (0.02, b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n'),
        (0.03, b": keep-alive\n"),
        (0.04, b'data: {"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}\n'),
        (0.05, b"data: [DONE]\n"),
    ]
    p = parse_stream(lines)
    assert p.method == "text" and p.chunk_offsets_s == [0.02, 0.04] and p.text == "Hello"
    assert p.error is None and p.finish_reason == "stop"

"""Generated SSE streams (fixed seed): every stream, however mangled, ends as one clean record, never an exception.

Streams start from vLLM's real recordings (tests/fixtures/vllm) and synthetic ones, then are mutated: a
value replaced by another JSON type (strings, huge or fractional numbers, lists, objects, nulls, deep
nesting), events cut, bytes flipped, reads split at random places. The record is either a success whose
counts are consistent, or a failure with an error_kind the bench knows (and the offending bytes,
truncated, for a malformed reply).
"""

import json
import random
from pathlib import Path

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from specwise.bench.sse import EXCERPT_BYTES, parse_stream
from specwise.bench.workloads import Prompt, RequestSpec

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "vllm"
CASES = 1500
KINDS = {"malformed_sse", "malformed_stream", "malformed_usage", "malformed_metrics", "stream_error",
         "truncated_stream", "empty_response"}
WEIRD = ["abc", "", 5, -3, 1.5, 1e308, float("inf"), 10**40, True, None, [], [5], ["a"], {}, {"a": 1}, [[[]]],
         "\ud800", "\x00", {"content": 5}]


def _synthetic(rng: random.Random) -> list[dict]:
    n = rng.randint(1, 6)
    events: list[dict] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    cum = 0
    for i in range(n):
        cum += rng.randint(1, 4)
        ch = {"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": "length" if i == n - 1 else None,
              "token_ids": list(range(cum - 1, cum))}
        events.append({"choices": [ch], "usage": {"prompt_tokens": 7, "completion_tokens": cum}})
    events.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": cum},
                   "metrics": {"speculative_decoding": {"draft_acceptance_rate": 0.5, "num_spec_steps": n}}})
    return events


def _recorded() -> list[list[dict]]:
    out = []
    for path in sorted(FIX.glob("sse-*.txt")):
        events = []
        for line in path.read_bytes().splitlines():
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                events.append(json.loads(line[5:]))
        out.append(events)
    return out


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _replace(obj, path, value):
    if not path:
        return value
    obj = json.loads(json.dumps(obj))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def _mutate(rng: random.Random, events: list[dict]) -> bytes:
    events = list(events)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(events))
        path = rng.choice(list(_paths(events[i])))
        value = rng.choice(WEIRD)
        if rng.random() < 0.05:
            value = "__DEEP__"  # becomes 3000 nested lists once serialised (json.loads recurses on them)
        events[i] = _replace(events[i], path, value)
    lines = []
    for e in events:
        try:
            data = json.dumps(e, allow_nan=True).replace('"__DEEP__"', "[" * 3000 + "]" * 3000)
        except ValueError:
            data = '{"choices": [}'
        lines.append(b"data: " + data.encode("utf-8", "surrogatepass") + b"\n\n")
    if rng.random() < 0.7:
        lines.append(b"data: [DONE]\n\n")
    body = b"".join(lines)
    if rng.random() < 0.2:  # flip some bytes
        raw = bytearray(body)
        for _ in range(rng.randint(1, 5)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        body = bytes(raw)
    if rng.random() < 0.2:  # cut the stream short
        body = body[: rng.randrange(len(body))]
    return body


def _reads(rng: random.Random, body: bytes) -> list[tuple[float, bytes]]:
    cuts = sorted(rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randint(0, 6)))) if len(body) > 1 else []
    parts, last = [], 0
    for c in [*cuts, len(body)]:
        parts.append(body[last:c])
        last = c
    return [(0.01 * (i + 1), p) for i, p in enumerate(parts) if p]


@pytest.mark.parametrize("counting", ["auto", "usage", "token_ids", "text"])
def test_generated_streams_end_as_one_clean_record(counting):
    rng = random.Random(20261203)
    recorded = _recorded()
    client = StreamingClient(ClientConfig(base_url="http://127.0.0.1:1", model="m", token_counting=counting))
    req = RequestSpec(index=0, request_id="r0", prompt=Prompt(prompt_id="p", category="chat", messages=[
        {"role": "user", "content": "hi"}]), category="chat", max_tokens=16, temperature=0.0)
    seen = set()
    for _ in range(CASES // 4):
        base = rng.choice(recorded) if recorded and rng.random() < 0.5 else _synthetic(rng)
        reads = _reads(rng, _mutate(rng, base))
        parsed = parse_stream(reads, counting)  # never raises
        out = client.outcome(req, "speculative", 1.0, 0, None, 4, 0.0, reads, None, None)
        rec = out.record
        if rec.ok:
            assert parsed.error is None
            assert len(rec.chunk_offsets_s) == len(rec.chunk_tokens) >= 1 and rec.ttft_s is not None
            assert rec.output_tokens >= 0
        else:
            assert rec.error_kind in KINDS, (rec.error_kind, rec.error)
            seen.add(rec.error_kind)
            if rec.error_kind.startswith("malformed"):
                assert rec.error_detail and len(rec.error_detail) <= 4 * EXCERPT_BYTES + 3
        rec.model_dump_json()  # storable
    assert {"malformed_sse", "malformed_stream", "malformed_usage"} <= seen

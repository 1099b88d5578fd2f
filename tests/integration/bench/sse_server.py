"""A small real OpenAI-compatible streaming server for bench tests (aiohttp on 127.0.0.1, own thread).

It streams like vLLM V1 with speculation: a role-only first chunk, then one chunk per engine step
carrying ``1 + accepted`` tokens, cumulative ``usage`` when ``continuous_usage_stats`` is asked for, a
final usage-only chunk (with ``metrics.speculative_decoding`` when ``per_request_spec``), and
``/metrics`` counters in vLLM V1 names updated per step. Faults are injected on purpose.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class ServerBehaviour:
    k: int = 3
    tokens_per_chunk: list[int] = field(default_factory=lambda: [1])  # cycled over decode steps
    ttft_s: float = 0.005
    itl_s: float = 0.002
    per_request_spec: bool = False
    fault: str | None = None  # close_first, http_500, truncate, malformed, drop, slow, stream_error, malformed_modes
    fault_every: int = 0  # 0 = every request when fault is set; n = every n-th request
    model: str = "test-model"
    spec: bool = True
    max_concurrent: int = 0  # > 0: requests beyond this queue (a server with finite capacity)
    metrics: bool = True  # False: /metrics answers 404 (e.g. a proxy that does not expose it)
    bad_position_label: bool = False  # /metrics also carries a per-position series with position="abc"
    models_reply: object = None  # not None: what /v1/models answers instead of the model list


# Replies of the wrong shape, one per mode (fault="malformed_modes" cycles through them request by request):
# each is a complete stream that a careless client would crash on or silently drop. The value is the
# data line sent mid-stream (after a valid first content chunk), or a callable special case.
MALFORMED_MODES: dict[str, str] = {
    "not_json": "{this is not json",
    "choices_string": '{"choices": "abc"}',
    "choices_int_list": '{"choices": [5]}',
    "content_int": '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
    "delta_list": '{"choices": [{"index": 0, "delta": [1, 2]}]}',
    "text_dict": '{"choices": [{"index": 0, "text": {"a": 1}}]}',
    "usage_string": '{"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": {"completion_tokens": "abc"}}',
    "usage_huge": '{"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": {"completion_tokens": 1e400}}',
    "usage_list": '{"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": [1]}',
    "prompt_tokens_float": '{"choices": [], "usage": {"prompt_tokens": 1.5, "completion_tokens": 3}}',
    "token_ids_strings": '{"choices": [{"index": 0, "text": "x", "token_ids": ["a", "b"]}]}',
    "token_ids_nested": '{"choices": [{"index": 0, "text": "x", "token_ids": [[1], {"a": 2}]}]}',
    "spec_metrics_int": '{"choices": [], "metrics": {"speculative_decoding": 5}}',
    "spec_metrics_field": '{"choices": [], "metrics": {"speculative_decoding": {"draft_acceptance_rate": "high"}}}',
    "finish_reason_int": '{"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": 7}]}',
    "deep_nesting": '{"choices": ' + "[" * 100000 + "]" * 100000 + "}",
    "top_level_list": "[1, 2, 3]",
    "error_object": '{"error": {"message": "engine dead", "code": 500}}',
    "no_done_no_finish": "",  # the stream just ends after the first chunk
}


class SSEServer:
    def __init__(self, behaviour: ServerBehaviour | None = None, port: int | None = None) -> None:
        self.b = behaviour or ServerBehaviour()
        self.port = port or _free_port()
        self.requests = 0
        self.counters = {"drafts": 0, "draft_tokens": 0, "accepted": 0, "generation": 0}
        self.per_pos = [0] * self.b.k
        self.running = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.bodies: list[dict] = []
        self.modes_sent: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SSEServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._complete)
            app.router.add_post("/v1/completions", self._complete)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/health", lambda r: web.Response(text=""))
            app.router.add_get("/version", lambda r: web.json_response({"version": "0.0-test"}))
            app.router.add_get("/v1/models", lambda r: web.json_response(
                {"data": [{"id": self.b.model}]} if self.b.models_reply is None else self.b.models_reply))
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def restart(self) -> None:
        """Stop and start on the same port with counters reset (like a server process restart)."""
        self.stop()
        self.counters = dict.fromkeys(self.counters, 0)
        self.per_pos = [0] * self.b.k
        self._sem = None  # bound to the old event loop
        self.start()

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- handlers --------------------------------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        if not self.b.metrics:
            return web.Response(status=404, text="not found")
        lab = f'engine="0",model_name="{self.b.model}"'
        lines = [
            "# TYPE vllm:num_requests_running gauge", f"vllm:num_requests_running{{{lab}}} {self.running}",
            "# TYPE vllm:num_requests_waiting gauge", f"vllm:num_requests_waiting{{{lab}}} 0",
            "# TYPE vllm:kv_cache_usage_perc gauge", f"vllm:kv_cache_usage_perc{{{lab}}} {0.01 * self.running}",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lab}}} {self.counters['generation']}",
        ]
        if self.b.spec:
            lines += [
                "# TYPE vllm:spec_decode_num_drafts_total counter",
                f"vllm:spec_decode_num_drafts_total{{{lab}}} {self.counters['drafts']}",
                "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
                f"vllm:spec_decode_num_draft_tokens_total{{{lab}}} {self.counters['draft_tokens']}",
                "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
                f"vllm:spec_decode_num_accepted_tokens_total{{{lab}}} {self.counters['accepted']}",
                "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter",
            ]
            lines += [
                f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="{i}"}} {v}'
                for i, v in enumerate(self.per_pos)
            ]
            if self.b.bad_position_label:
                lines.append(f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="abc"}} 3')
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        if self.b.max_concurrent:
            if getattr(self, "_sem", None) is None:
                self._sem = asyncio.Semaphore(self.b.max_concurrent)
            async with self._sem:
                return await self._complete_now(request)
        return await self._complete_now(request)

    async def _complete_now(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        n = self.requests
        body = await request.json()
        self.bodies.append(body)
        b = self.b
        faulty = b.fault is not None and (b.fault_every == 0 or n % b.fault_every == 0)
        if b.fault == "close_first" and n == 1:
            # what a stale keep-alive connection looks like: closed with no byte of response
            request.transport.close()
            return web.Response()
        if faulty and b.fault == "http_500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        chat = request.path.endswith("chat/completions")
        max_tokens = int(body.get("max_tokens", 16))
        usage_on = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        self.running += 1
        self.peak_running = max(getattr(self, "peak_running", 0), self.running)
        try:
            async def send(obj: dict | str) -> None:
                data = obj if isinstance(obj, str) else json.dumps(obj)
                await resp.write(f"data: {data}\n\n".encode())

            def chunk(text: str | None, ids: list[int], cum: int, finish: str | None = None) -> dict:
                if chat:
                    delta = {"role": "assistant", "content": ""} if text is None else {"content": text}
                    ch = {"index": 0, "delta": delta, "finish_reason": finish}
                else:
                    ch = {"index": 0, "text": text or "", "finish_reason": finish}
                if body.get("return_token_ids") and text is not None:
                    ch["token_ids"] = ids
                out = {"id": f"cmpl-{n}", "object": "chat.completion.chunk", "choices": [ch]}
                if usage_on:
                    out["usage"] = {"prompt_tokens": 7, "completion_tokens": cum, "total_tokens": 7 + cum}
                return out

            if chat:
                await send(chunk(None, [], 0))
            await asyncio.sleep(b.ttft_s if not (faulty and b.fault == "slow") else 5.0)
            produced = 0
            step = 0
            steps_accepted: list[int] = []
            while produced < max_tokens:
                if produced == 0:
                    n_tok = 1  # prefill emits one token
                else:
                    n_tok = min(b.tokens_per_chunk[step % len(b.tokens_per_chunk)], max_tokens - produced)
                    step += 1
                    acc = n_tok - 1
                    steps_accepted.append(acc)
                    if b.spec:
                        self.counters["drafts"] += 1
                        self.counters["draft_tokens"] += b.k
                        self.counters["accepted"] += acc
                        for i in range(min(acc, b.k)):
                            self.per_pos[i] += 1
                ids = list(range(produced, produced + n_tok))
                produced += n_tok
                self.counters["generation"] += n_tok
                finish = "length" if produced >= max_tokens else None
                if faulty and b.fault == "truncate" and produced > max_tokens // 2:
                    return resp  # stream ends with no finish_reason and no [DONE]
                if faulty and b.fault == "drop" and produced > max_tokens // 2:
                    request.transport.close()
                    return resp
                if faulty and b.fault == "malformed" and produced > max_tokens // 2:
                    await resp.write(b"data: {this is not json\n\n")
                    return resp
                if faulty and b.fault == "stream_error" and produced > max_tokens // 2:
                    await send({"error": {"message": "engine dead", "code": 500}})
                    return resp
                if b.fault == "malformed_modes" and produced > 1:
                    mode = list(MALFORMED_MODES)[(n - 1) % len(MALFORMED_MODES)]
                    self.modes_sent.append(mode)
                    if MALFORMED_MODES[mode]:
                        await send(MALFORMED_MODES[mode])
                    return resp
                await send(chunk("".join(f"t{i} " for i in ids), ids, produced, finish))
                if produced < max_tokens:
                    await asyncio.sleep(b.itl_s)
            final: dict = {"id": f"cmpl-{n}", "choices": [],
                           "usage": {"prompt_tokens": 7, "completion_tokens": produced, "total_tokens": 7 + produced}}
            if b.per_request_spec and steps_accepted:
                acc_total = sum(steps_accepted)
                final["metrics"] = {"speculative_decoding": {
                    "mean_acceptance_length": 1 + acc_total / len(steps_accepted),
                    "draft_acceptance_rate": acc_total / (len(steps_accepted) * b.k),
                    "acceptance_histogram": [steps_accepted.count(j) for j in range(b.k + 1)],
                    "num_spec_steps": len(steps_accepted), "num_accepted_draft_tokens": acc_total,
                    "num_draft_tokens": len(steps_accepted) * b.k, "num_spec_tokens": b.k,
                    "per_step_accepted": steps_accepted, "per_step_drafted": [b.k] * len(steps_accepted),
                    "some_future_field": 1,
                }}
            if (body.get("stream_options") or {}).get("include_usage"):
                await send(final)
            await send("[DONE]")
            await resp.write_eof()
            return resp
        finally:
            self.running -= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout_s: float = 5.0) -> bool:
    end = time.time() + timeout_s
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def main() -> None:
    """Run as a server process (used to test the bench's own server launching)."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens-per-chunk", default="1")
    ap.add_argument("--no-spec", action="store_true")
    ap.add_argument("--max-concurrent", type=int, default=0)
    ap.add_argument("--itl", type=float, default=0.002)
    ap.add_argument("--per-request-spec", action="store_true")
    ap.add_argument("--log-line", action="append", default=[], help="printed at startup, like an engine log")
    ap.add_argument("--speculative-config", default=None, help="accepted and ignored (parsed by the bench)")
    args, unknown = ap.parse_known_args()  # vLLM flags (e.g. forced by --like-for-like) are accepted
    for line in args.log_line:
        print(line, flush=True)
    if "--no-async-scheduling" in unknown or "--async-scheduling" in unknown:
        state = "disabled" if "--no-async-scheduling" in unknown else "enabled"
        print(f"Asynchronous scheduling is {state}", flush=True)
    behaviour = ServerBehaviour(tokens_per_chunk=[int(x) for x in args.tokens_per_chunk.split(",")],
                                spec=not args.no_spec, per_request_spec=args.per_request_spec,
                                max_concurrent=args.max_concurrent, itl_s=args.itl)
    server = SSEServer(behaviour, port=args.port).start()
    print(f"serving on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

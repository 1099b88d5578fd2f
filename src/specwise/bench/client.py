"""Async streaming client for OpenAI-compatible endpoints (``/v1/chat/completions``, ``/v1/completions``).

Timing (``specwise.bench.http_stream``): every socket read of a response body carries its arrival
time on the ``time.perf_counter`` scale: the kernel's receive time of the read's last TCP segment
for plain ``http`` on Linux, else the time the event loop hands the read over, before any task runs.
A chunk's time is the arrival of the read that completed it; offsets are seconds after the send
(connecting included). SSE lines and JSON are parsed only after the stream ends, one stream at a
time. ``benchmarks/client_accuracy.py`` measures the residual error against a server's write times.

Parsing the finished stream and counting its tokens is :mod:`specwise.bench.sse`; the method used is
recorded per request.

Faults are data: connection refused, timeouts, HTTP errors, truncated or malformed streams and
mid-stream disconnects give a :class:`RequestRecord` with ``error`` and ``error_kind``, never an
exception. The API key is read from an environment variable and only ever placed in the request header.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field

from specwise.bench.http_stream import HttpError, StreamConnectionPool, kernel_stamps_for
from specwise.bench.sse import TokenCounting, parse_stream
from specwise.bench.workloads import RequestSpec
from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.results import RequestRecord, Role

__all__ = [
    "ClientConfig",
    "StreamOutcome",
    "StreamingClient",
    "api_key_headers",
    "discover_model",
    "failed_record",
    "run_async",
]

class ClientConfig(SpecwiseModel):
    """How to talk to one endpoint. Holds the *name* of the API-key variable, never the key."""

    base_url: str = Field(description="server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted)")
    model: str
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    timeout_s: float = Field(600.0, gt=0, description="whole-request limit")
    connect_timeout_s: float = Field(10.0, gt=0)
    token_counting: TokenCounting = Field(
        "auto", description="auto = continuous usage stats, then token_ids/logprobs/text as the stream allows"
    )
    request_token_ids: bool = Field(False, description="also send vLLM's return_token_ids (0.10.2+)")
    request_logprobs: bool = Field(False, description="also request logprobs (one entry per token; costs compute)")
    ignore_eos: bool = False
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @property
    def root(self) -> str:
        base = self.base_url.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base


class StreamOutcome(SpecwiseModel):
    """A finished request: its record plus what the losslessness check needs (text, token ids)."""

    record: RequestRecord
    text: str = ""
    token_ids: list[int] | None = None


def _api_key(cfg: ClientConfig) -> str | None:
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if key is None:
        raise UserError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set")
    return key


def api_key_headers(cfg: ClientConfig) -> dict[str, str]:
    """The Authorization header for ``cfg`` (empty without an API key variable)."""
    key = _api_key(cfg)
    return {"Authorization": f"Bearer {key}"} if key else {}


def build_payload(cfg: ClientConfig, req: RequestSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": cfg.model,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if req.seed is not None and req.temperature > 0:
        body["seed"] = req.seed
    if cfg.api == "chat":
        body["messages"] = req.prompt.as_messages()
        if cfg.request_logprobs or cfg.token_counting == "logprobs":
            body["logprobs"] = True
    else:
        body["prompt"] = req.prompt.as_text()
        if cfg.request_logprobs or cfg.token_counting == "logprobs":
            body["logprobs"] = 0
    if cfg.request_token_ids or cfg.token_counting == "token_ids":
        body["return_token_ids"] = True
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    body.update(cfg.extra_body)
    return body


def failed_record(req: RequestSpec, *, role: Role, error_kind: str, error: str, qps: float | None = None,
                  repeat: int = 0, sent_s: float | None = None, error_detail: str | None = None) -> RequestRecord:
    """The record of a request that was sent but ended without an answer to measure."""
    return RequestRecord(request_id=req.request_id, role=role, qps=qps, temperature=req.temperature,
                         category=req.category, prompt_id=req.prompt.prompt_id, repeat=repeat,
                         scheduled_s=req.scheduled_s, sent_s=sent_s, error=error, error_kind=error_kind,
                         error_detail=error_detail)


def stopped_record(req: RequestSpec, *, role: Role, qps: float | None, repeat: int,
                   drain_s: float | None = None) -> RequestRecord:
    """The record of a sent request that its cell cancelled: past the cell's drain limit (``drain_s`` given), a
    timeout; otherwise the error budget stopped the cell."""
    if drain_s is not None:
        return failed_record(req, role=role, qps=qps, repeat=repeat, error_kind="timeout",
                             error=f"no complete response within the cell's drain limit ({drain_s:g} s after its "
                             "last send)")
    return failed_record(req, role=role, qps=qps, repeat=repeat, error_kind="cancelled",
                         error="cancelled: the cell stopped early (error budget exceeded)")


def drain_cut_note(cut: int, drain_s: float) -> str:
    """What a cell says when its drain limit cut streams (single-process and sharded cells alike)."""
    return (f"{cut} requests were still streaming {drain_s:g} s after the last send; they were cancelled and "
            "recorded as timeouts")


async def discover_model(base_url: str, api_key_env: str | None = None, timeout_s: float = 10.0) -> str:
    """The first model id served at ``base_url`` (GET /v1/models)."""
    cfg = ClientConfig(base_url=base_url, model="?", api_key_env=api_key_env)
    headers = {}
    key = _api_key(cfg)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            async with s.get(cfg.root + "/v1/models", headers=headers) as resp:
                if resp.status != 200:
                    raise UserError(f"GET {cfg.root}/v1/models returned HTTP {resp.status}; pass --model NAME")
                try:
                    data = await resp.json(content_type=None)
                except (ValueError, RecursionError):
                    raise UserError(f"GET {cfg.root}/v1/models did not answer JSON; pass --model NAME") from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise UserError(f"cannot reach {cfg.root} ({type(exc).__name__}); is the server running?") from exc
    models = data.get("data") if isinstance(data, dict) else None
    first = models[0] if isinstance(models, list) and models else None
    if not isinstance(first, dict) or first.get("id") in (None, ""):
        raise UserError(f"{cfg.root}/v1/models lists no model id; pass --model NAME")
    return str(first["id"])


def run_async(coro):  # noqa: ANN001, ANN201
    """``asyncio.run`` on uvloop when it is installed (less event-loop overhead per streamed chunk)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class StreamingClient:
    """One endpoint's streaming client; :meth:`send` streams one request and never raises for server faults.

    Requests go through :class:`specwise.bench.http_stream.StreamConnectionPool` (reads stamped on
    arrival, see that module for why); parsing the finished stream and building its record run in a
    one-at-a-time lane that yields to the event loop in between, so that many streams ending in the
    same engine step do not hold back the arrival stamps of the streams still running.
    """

    def __init__(self, cfg: ClientConfig, *, max_connections: int = 0, kernel_stamps: bool = True) -> None:
        self.cfg = cfg
        self._kernel_stamps = kernel_stamps  # False: loop-time stamps even where the kernel's are available
        self.auth_headers = api_key_headers(cfg)
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **self.auth_headers}
        self._max_connections = max_connections
        self._pool: StreamConnectionPool | None = None
        self._parse_lane: asyncio.Lock | None = None

    async def __aenter__(self) -> StreamingClient:
        # Idle pooled connections are dropped after 3 s, before the server drops them (uvicorn, under
        # vLLM, closes idle keep-alive connections after 5 s): reusing one it closed fails the request.
        try:
            self._pool = StreamConnectionPool(self.url, connect_timeout_s=self.cfg.connect_timeout_s,
                                              keepalive_s=3.0, max_connections=self._max_connections,
                                              kernel_stamps=self._kernel_stamps)
        except ValueError as exc:
            raise UserError(f"{self.cfg.base_url}: {exc}; give an http:// or https:// server root") from exc
        self._parse_lane = asyncio.Lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @property
    def arrival_stamps(self) -> Literal["kernel", "event_loop"]:
        """How this client's chunk arrival times are taken (see :mod:`specwise.bench.http_stream`)."""
        pool = self._pool
        kernel = pool.kernel_stamps if pool is not None else (self._kernel_stamps and kernel_stamps_for(self.cfg.root))
        return "kernel" if kernel else "event_loop"

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.cfg.api == "chat" else "/v1/completions"
        return self.cfg.root + path

    async def send(
        self,
        req: RequestSpec,
        *,
        role: Role,
        qps: float | None = None,
        repeat: int = 0,
        phase_t0: float | None = None,
        max_tokens_per_step: int | None = None,
    ) -> StreamOutcome:
        """Stream ``req``; timestamps are ``time.perf_counter`` based, offsets relative to the send.

        ``t_send`` is taken before a connection is taken from the pool or opened, so TTFT includes
        connecting (as a user would see it). ``max_tokens_per_step`` (1 for a baseline, k+1 with
        speculation) flags chunks that must hold several engine steps (``chunk_estimate_safe=False``).
        """
        assert self._pool is not None and self._parse_lane is not None, "use `async with StreamingClient(...)`"
        t_send = time.perf_counter()
        try:
            body = json.dumps(build_payload(self.cfg, req)).encode()
            payload = self._pool.request_bytes(urlsplit(self.url).path, body, self._headers)
            lines: list[tuple[float, bytes]] = []
            for attempt in range(2):
                t_send = time.perf_counter()
                lines, error, error_kind, no_answer = await self._attempt(payload, t_send=t_send)
                # A pooled connection the server had already closed fails before any byte arrives; that
                # is the client's artefact, not the server's answer, so it gets one immediate retry.
                if not (no_answer and attempt == 0):
                    break
            async with self._parse_lane:
                outcome = self.outcome(req, role, qps, repeat, phase_t0, max_tokens_per_step, t_send, lines,
                                        error, error_kind)
                await asyncio.sleep(0)  # let the loop poll its sockets before the next stream's parse
        except Exception as exc:  # noqa: BLE001 - a sent request always ends as a record, whatever failed
            record = failed_record(req, role=role, qps=qps, repeat=repeat,
                                   sent_s=(t_send - phase_t0) if phase_t0 is not None else None,
                                   error_kind="client_error", error=f"{type(exc).__name__}: {exc}"[:300])
            return StreamOutcome(record=record)
        return outcome

    async def _attempt(
        self, payload: bytes, *, t_send: float
    ) -> tuple[list[tuple[float, bytes]], str | None, str | None, bool]:
        """(body reads as (seconds after send, bytes), error, error kind, closed before any byte of answer)."""
        assert self._pool is not None
        error = error_kind = None
        lines: list[tuple[float, bytes]] = []
        no_answer = False
        try:
            resp, _ = await asyncio.wait_for(self._pool.post(payload), self.cfg.timeout_s)
            if resp.status != 200:
                detail = resp.body().decode("utf-8", "replace")[:300].replace("\n", " ")
                error, error_kind = f"HTTP {resp.status}: {detail}", f"http_{resp.status}"
            else:
                lines = [(t - t_send, raw) for t, raw in resp.reads]
        except asyncio.TimeoutError:
            error, error_kind = f"no complete response within {self.cfg.timeout_s:g} s", "timeout"
        except HttpError as exc:
            if exc.kind == "connect":
                error, error_kind = str(exc), "connection_refused"
            elif exc.kind == "connect_timeout":
                error, error_kind = str(exc), "timeout"
            elif exc.kind == "disconnected":
                # a reset or closed connection after connecting: the server went away mid-request
                error, error_kind = f"server closed the connection: {exc}", "disconnected"
                no_answer = not exc.got_bytes
            else:
                error, error_kind = f"bad HTTP response: {exc}", "client_error"
        return lines, error, error_kind, no_answer

    def outcome(
        self,
        req: RequestSpec,
        role: Role,
        qps: float | None,
        repeat: int,
        phase_t0: float | None,
        max_tokens_per_step: int | None,
        t_send: float,
        lines: list[tuple[float, bytes]],
        error: str | None,
        error_kind: str | None,
    ) -> StreamOutcome:
        """The record of one finished exchange: its body reads (seconds after send) parsed, or the transport
        error. Never raises for anything the server sent (see :func:`parse_stream`)."""
        parsed = parse_stream(lines, self.cfg.token_counting)
        if error is None:
            error, error_kind = parsed.error, parsed.error_kind
        ttft = parsed.chunk_offsets_s[0] if parsed.chunk_offsets_s else None
        e2e = parsed.chunk_offsets_s[-1] if parsed.chunk_offsets_s else None
        safe = parsed.method != "text"
        if safe and max_tokens_per_step is not None:
            # The first chunk also carries prefill's token; later chunks are decode steps.
            safe = all(t <= max_tokens_per_step for t in parsed.chunk_tokens[1:])
        if error is None and not parsed.chunk_offsets_s:
            error, error_kind = "stream carried no output", "empty_response"
        record = RequestRecord(
            request_id=req.request_id, role=role, qps=qps, temperature=req.temperature, category=req.category,
            prompt_id=req.prompt.prompt_id, repeat=repeat, scheduled_s=req.scheduled_s,
            sent_s=(t_send - phase_t0) if phase_t0 is not None else None,
            prompt_tokens=parsed.prompt_tokens, output_tokens=parsed.output_tokens,
            ttft_s=ttft, e2e_s=e2e, chunk_offsets_s=parsed.chunk_offsets_s, chunk_tokens=parsed.chunk_tokens,
            token_count_method=parsed.method, chunk_estimate_safe=safe, server_spec=parsed.server_spec,
            arrival_stamps=self.arrival_stamps,
            finish_reason=parsed.finish_reason, error=error, error_kind=error_kind,
            error_detail=parsed.error_detail if error == parsed.error else None,
        )
        return StreamOutcome(record=record, text=parsed.text, token_ids=parsed.token_ids)

"""Async streaming client for OpenAI-compatible endpoints (``/v1/chat/completions``, ``/v1/completions``).

Timing (``specwise.bench.http_stream``): every socket read of a response body carries its arrival
time on the ``time.perf_counter`` scale: the kernel's receive time of the read's last TCP segment
for plain ``http`` on Linux, else the time the event loop hands the read over, before any task runs.
A chunk's time is the arrival of the read that completed it; offsets are seconds after the send
(connecting included). SSE lines and JSON are parsed only after the stream ends, one stream at a
time. ``benchmarks/client_accuracy.py`` measures the residual error against a server's write times.

Token counting (vllm-speculative-decoding.md §3.1): text deltas are not tokens (the detokenizer holds
text back, empty deltas are suppressed, the API server merges steps under load), so every request asks
for ``stream_options: {include_usage, continuous_usage_stats}`` and counts each chunk's tokens as the
difference of the cumulative ``usage.completion_tokens``. Fallbacks, in order: ``token_ids`` (vLLM
``return_token_ids``), ``logprobs`` entries, and one token per non-empty text delta (``text``, marked
unsafe). The method used is recorded per request.

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
from specwise.bench.workloads import RequestSpec
from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.results import RequestRecord, Role, ServerSpecDecodeRequestMetrics

__all__ = [
    "ClientConfig",
    "StreamOutcome",
    "StreamingClient",
    "api_key_headers",
    "discover_model",
    "excerpt",
    "failed_record",
    "parse_stream",
    "run_async",
]

TokenCounting = Literal["auto", "usage", "token_ids", "logprobs", "text"]
_SPEC_FIELDS = set(ServerSpecDecodeRequestMetrics.model_fields)


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


class _Parsed(SpecwiseModel):
    chunk_offsets_s: list[float] = Field(default_factory=list)
    chunk_tokens: list[int] = Field(default_factory=list)
    method: str = "text"
    output_tokens: int = 0
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    text: str = ""
    token_ids: list[int] | None = None
    server_spec: ServerSpecDecodeRequestMetrics | None = None
    done: bool = False
    error: str | None = None
    error_kind: str | None = None
    error_detail: str | None = None


class _Malformed(Exception):
    """A reply event of the wrong shape: ``kind`` names what was wrong, ``data`` is the event's bytes."""

    def __init__(self, kind: str, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.kind, self.message, self.data = kind, message, data


# Bytes of a malformed event kept in the record for diagnosis (enough to see its shape, never a whole stream).
EXCERPT_BYTES = 200


def excerpt(data: bytes | str) -> str:
    """The first :data:`EXCERPT_BYTES` bytes of ``data`` as printable text (a record's ``error_detail``)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    cut = raw[:EXCERPT_BYTES]
    return repr(cut)[2:-1] + ("..." if len(raw) > EXCERPT_BYTES else "")


def _count(value: Any, what: str, kind: str) -> int | None:
    """A token count from the reply: a non-negative whole number (or null), else the reply is malformed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Malformed(kind, f"{what} is {type(value).__name__} {value!r:.40}, not a whole number")
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2**53):
        raise _Malformed(kind, f"{what} is {value!r:.40}, not a whole number")
    if value < 0:
        raise _Malformed(kind, f"{what} is negative ({value})")
    return int(value)


def _clean(text: str) -> str:
    """``text`` as valid Unicode: JSON may escape lone surrogates (\\ud800), which no file or JSON output can
    hold; they become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed("malformed_stream", f"{what} is {type(value).__name__}, not text")
    return _clean(value)


def _choice_payload(choice: Any) -> tuple[str, list[int] | None, int | None]:
    """(text, token ids, logprob entries) carried by one streamed choice; :class:`_Malformed` when mis-shaped."""
    if not isinstance(choice, dict):
        raise _Malformed("malformed_stream", f"choices[0] is {type(choice).__name__}, not an object")
    delta = choice.get("delta")
    if delta is not None and not isinstance(delta, dict):
        raise _Malformed("malformed_stream", f"choices[0].delta is {type(delta).__name__}, not an object")
    if isinstance(delta, dict):
        text = (_text(delta.get("content"), "delta.content") or _text(delta.get("reasoning_content"),
                "delta.reasoning_content") or _text(delta.get("reasoning"), "delta.reasoning"))
        if not text and delta.get("tool_calls"):
            text = json.dumps(delta["tool_calls"])
    else:
        text = _text(choice.get("text"), "choices[0].text")
    ids = choice.get("token_ids")
    if ids is not None:
        if not isinstance(ids, list):
            raise _Malformed("malformed_stream", f"token_ids is {type(ids).__name__}, not a list")
        if any(i is None for i in ids):
            raise _Malformed("malformed_stream", "token_ids holds a null")
        ids = [_count(i, "a token id", "malformed_stream") for i in ids]
    lp = choice.get("logprobs")
    n_lp = None
    if isinstance(lp, dict):
        if isinstance(lp.get("content"), list):
            n_lp = len(lp["content"])
        elif isinstance(lp.get("tokens"), list):
            n_lp = len(lp["tokens"])
    return text, ids, n_lp


def _spec_metrics(metrics: Any) -> ServerSpecDecodeRequestMetrics | None:
    if not isinstance(metrics, dict) or metrics.get("speculative_decoding") is None:
        return None
    sd = metrics["speculative_decoding"]
    if not isinstance(sd, dict):
        raise _Malformed("malformed_metrics", f"metrics.speculative_decoding is {type(sd).__name__}, not an object")
    try:
        return ServerSpecDecodeRequestMetrics(**{k: v for k, v in sd.items() if k in _SPEC_FIELDS})
    except ValueError as exc:  # pydantic: a known field of the wrong type
        first = exc.errors()[0] if hasattr(exc, "errors") else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _Malformed("malformed_metrics", f"metrics.speculative_decoding.{where}: {first.get('msg', exc)}") \
            from None


def _split_lines(reads: list[tuple[float, bytes]]):
    """(arrival time, line) for every complete line; a line split across reads gets its last read's time."""
    buf = b""
    for t, raw in reads:
        buf += raw
        if b"\n" not in buf:
            continue
        *complete, buf = buf.split(b"\n")
        for line in complete:
            line = line.strip()
            if line:
                yield t, line
    # An unterminated last line is a stream cut mid-event (left to the truncation check), except a bare [DONE].
    if buf.strip() == b"data: [DONE]":
        yield reads[-1][0], buf.strip()


class _StreamError(Exception):
    """The server reported an error inside the stream."""


def _event(data: bytes, t: float, out: _Parsed, counts: dict[str, list[int]], texts: list[str], all_ids: list[int],
           prev_usage: int, final_usage_tokens: int | None, have_ids: bool) -> tuple[int | None, int, bool]:
    """Fold one SSE ``data:`` event into ``out``; (final usage tokens, previous cumulative usage, ids so far)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise _Malformed("malformed_sse", f"malformed SSE data: {data[:120]!r}") from None
    if not isinstance(obj, dict):
        raise _Malformed("malformed_sse", f"malformed SSE data: {data[:120]!r}")
    if "error" in obj and not obj.get("choices"):
        err = obj["error"]
        msg = err.get("message") if isinstance(err, dict) else str(err)
        raise _StreamError(_clean(f"server error in stream: {str(msg)[:300]}"))
    usage = obj.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _Malformed("malformed_usage", f"usage is {type(usage).__name__}, not an object")
    completion = None
    if usage is not None:
        prompt = _count(usage.get("prompt_tokens"), "usage.prompt_tokens", "malformed_usage")
        if prompt is not None:
            out.prompt_tokens = prompt
        completion = _count(usage.get("completion_tokens"), "usage.completion_tokens", "malformed_usage")
    spec = _spec_metrics(obj.get("metrics"))
    if spec is not None:
        out.server_spec = spec
    choices = obj.get("choices") or []
    if not isinstance(choices, list):
        raise _Malformed("malformed_stream", f"choices is {type(choices).__name__}, not a list")
    if not choices:
        if completion is not None:
            final_usage_tokens = completion
        return final_usage_tokens, prev_usage, have_ids
    choice = choices[0]
    text, ids, n_lp = _choice_payload(choice)
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise _Malformed("malformed_stream", f"finish_reason is {type(finish).__name__}, not text")
    if finish:
        out.finish_reason = _clean(finish)
    usage_tokens = None
    if completion is not None:
        usage_tokens = completion - prev_usage
        prev_usage = completion
        final_usage_tokens = completion
    if not (text or ids or usage_tokens):
        return final_usage_tokens, prev_usage, have_ids
    out.chunk_offsets_s.append(t)
    texts.append(text)
    counts["usage"].append(usage_tokens if usage_tokens is not None else -1)
    counts["token_ids"].append(len(ids) if ids is not None else -1)
    counts["logprobs"].append(n_lp if n_lp is not None else -1)
    counts["text"].append(1)
    if ids is None:
        have_ids = False
    else:
        all_ids.extend(ids)
    return final_usage_tokens, prev_usage, have_ids


def parse_stream(lines: list[tuple[float, bytes]], counting: TokenCounting = "auto") -> _Parsed:
    """Turn timestamped socket reads (or lines) of an SSE stream into chunk offsets, token counts and per-request metrics.

    Timestamps are seconds after send. A chunk counts when it carries output (text, token ids, or an
    increase in cumulative completion tokens); the role-only opening chunk does not (as vllm bench).
    Never raises: an event of the wrong shape ends the parse with ``error_kind`` malformed_sse (not a
    JSON object), malformed_stream (choices, text, token ids, finish_reason), malformed_usage (token
    counts) or malformed_metrics (per-request speculative metrics), and the event's bytes in
    ``error_detail``.
    """
    out = _Parsed()
    prev_usage = 0
    counts: dict[str, list[int]] = {"usage": [], "token_ids": [], "logprobs": [], "text": []}
    all_ids: list[int] = []
    have_ids = True
    texts: list[str] = []
    final_usage_tokens: int | None = None
    for t, line in _split_lines(lines):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            out.done = True
            break
        try:
            final_usage_tokens, prev_usage, have_ids = _event(
                data, t, out, counts, texts, all_ids, prev_usage, final_usage_tokens, have_ids)
        except _Malformed as exc:
            out.error, out.error_kind, out.error_detail = exc.message, exc.kind, excerpt(data)
            return out
        except _StreamError as exc:
            out.error, out.error_kind = str(exc), "stream_error"
            return out
    order = ["usage", "token_ids", "logprobs", "text"] if counting == "auto" else [counting, "text"]
    for method in order:
        c = counts[method]
        if c and all(x >= 0 for x in c):
            out.method, out.chunk_tokens = method, c
            break
    else:
        out.method, out.chunk_tokens = "text", counts["text"]
    out.output_tokens = final_usage_tokens if final_usage_tokens is not None else sum(out.chunk_tokens)
    out.text = "".join(texts)
    out.token_ids = all_ids if (have_ids and all_ids) else None
    if not out.done and out.error is None:
        if out.finish_reason is None:
            out.error, out.error_kind = "stream ended before a finish_reason or [DONE]", "truncated_stream"
        # A stream with finish_reason but no [DONE] is complete for measuring purposes.
    return out


def failed_record(req: RequestSpec, *, role: Role, error_kind: str, error: str, qps: float | None = None,
                  repeat: int = 0, sent_s: float | None = None, error_detail: str | None = None) -> RequestRecord:
    """The record of a request that was sent but ended without an answer to measure."""
    return RequestRecord(request_id=req.request_id, role=role, qps=qps, temperature=req.temperature,
                         category=req.category, prompt_id=req.prompt.prompt_id, repeat=repeat,
                         scheduled_s=req.scheduled_s, sent_s=sent_s, error=error, error_kind=error_kind,
                         error_detail=error_detail)


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

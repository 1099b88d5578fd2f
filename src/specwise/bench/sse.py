"""Parsing an OpenAI-compatible SSE stream into chunk times, token counts and per-request metrics.

Token counting (docs/reference/vllm-speculative-decoding.md §3.1): text deltas are not tokens (the
detokenizer holds text back, empty deltas are suppressed, the API server merges steps under load), so
the client asks for ``stream_options: {include_usage, continuous_usage_stats}`` and each chunk's tokens
are the difference of the cumulative ``usage.completion_tokens``. Fallbacks, in order: ``token_ids``
(vLLM ``return_token_ids``), ``logprobs`` entries, and one token per non-empty text delta (``text``,
marked unsafe).

Nothing a server sends makes :func:`parse_stream` raise: an event of the wrong shape ends the parse with
an ``error_kind`` naming what was wrong and the event's first bytes (:func:`excerpt`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from specwise.schemas.base import SpecwiseModel
from specwise.schemas.results import ServerSpecDecodeRequestMetrics

__all__ = ["EXCERPT_BYTES", "ParsedStream", "TokenCounting", "excerpt", "parse_stream"]

TokenCounting = Literal["auto", "usage", "token_ids", "logprobs", "text"]
_SPEC_FIELDS = set(ServerSpecDecodeRequestMetrics.model_fields)


class ParsedStream(SpecwiseModel):
    """What one stream carried (see :func:`parse_stream`)."""

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


def _event(data: bytes, t: float, out: ParsedStream, counts: dict[str, list[int]], texts: list[str], all_ids: list[int],
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


def parse_stream(lines: list[tuple[float, bytes]], counting: TokenCounting = "auto") -> ParsedStream:
    """Turn timestamped socket reads (or lines) of an SSE stream into chunk offsets, token counts and per-request metrics.

    Timestamps are seconds after send. A chunk counts when it carries output (text, token ids, or an
    increase in cumulative completion tokens); the role-only opening chunk does not (as vllm bench).
    Never raises: an event of the wrong shape ends the parse with ``error_kind`` malformed_sse (not a
    JSON object), malformed_stream (choices, text, token ids, finish_reason), malformed_usage (token
    counts) or malformed_metrics (per-request speculative metrics), and the event's bytes in
    ``error_detail``.
    """
    out = ParsedStream()
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

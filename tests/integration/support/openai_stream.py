"""A minimal streaming client for the integration tests and the fixture capture: keeps the raw SSE bytes as received
and the decoded events, and derives tokens per chunk from `continuous_usage_stats` (vllm-speculative-decoding.md
§3.1: the cumulative `usage.completion_tokens` in every chunk counts tokens exactly, text deltas do not)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx


@dataclass
class StreamedResponse:
    raw: bytes
    events: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = []
        for event in self.events:
            for choice in event.get("choices", []):
                if "text" in choice:
                    parts.append(choice["text"] or "")
                else:
                    parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts)

    @property
    def final_usage(self) -> dict | None:
        usages = [e["usage"] for e in self.events if e.get("usage")]
        return usages[-1] if usages else None

    def tokens_per_chunk(self) -> list[int]:
        """Completion tokens added by each chunk that carries choices, from the cumulative usage counts."""
        counts, previous = [], 0
        for event in self.events:
            usage = event.get("usage")
            if not event.get("choices") or not usage:
                continue
            current = usage["completion_tokens"]
            if current > previous:
                counts.append(current - previous)
            previous = current
        return counts


def parse_sse(raw: bytes) -> list[dict]:
    events = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: "):]))
    return events


def stream(url: str, path: str, body: dict, timeout_s: float = 300.0) -> StreamedResponse:
    body = {**body, "stream": True}
    with httpx.stream("POST", url + path, json=body, timeout=timeout_s) as response:
        response.raise_for_status()
        raw = b"".join(response.iter_raw())
    return StreamedResponse(raw, parse_sse(raw))


def complete(url: str, body: dict, timeout_s: float = 300.0) -> dict:
    response = httpx.post(url + "/v1/completions", json=body, timeout=timeout_s)
    response.raise_for_status()
    return response.json()

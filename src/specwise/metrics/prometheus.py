"""Scrape a server's Prometheus ``/metrics`` endpoint into a typed snapshot.

Parsing uses :func:`prometheus_client.parser.text_string_to_metric_families`, so every exposition
rule the server's own library follows is honoured. Samples are keyed by their *exposed* name
(``vllm:spec_decode_num_drafts_total``, ``…_bucket``), which is what stays stable across vLLM
versions (docs/reference/vllm-speculative-decoding.md §2.1: "parse the `_total` sample name in every version").

Engine- and version-specific interpretation (which counters exist, what they mean, deltas) lives in
:mod:`specwise.metrics.adapters`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field

from specwise.schemas.base import SpecwiseModel

__all__ = [
    "MetricSample",
    "MetricsSnapshot",
    "MetricsUnavailable",
    "metrics_url",
    "parse_metrics_text",
    "scrape_metrics",
    "scrape_metrics_sync",
]


class MetricsUnavailable(RuntimeError):
    """``/metrics`` could not be read or parsed; the message says why (absent, refused, malformed)."""


class MetricSample(SpecwiseModel):
    """One exposed sample: labels and value."""

    labels: dict[str, str] = Field(default_factory=dict)
    value: float


class MetricsSnapshot(SpecwiseModel):
    """All samples of one scrape, keyed by exposed sample name."""

    taken_at: float = Field(description="wall-clock time of the scrape (unix seconds)")
    samples: dict[str, list[MetricSample]] = Field(default_factory=dict)
    types: dict[str, str] = Field(default_factory=dict, description="family name -> prometheus type")
    notes: list[str] = Field(default_factory=list, description="samples that could not be read and were skipped")

    def has(self, name: str) -> bool:
        return bool(self.samples.get(name))

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.samples if n.startswith(prefix))

    def total(self, name: str, **match: str) -> float | None:
        """Sum of every series of ``name`` whose labels include ``match`` (sums over ``engine``); None if absent."""
        series = [s for s in self.samples.get(name, []) if _labels_match(s.labels, match)]
        if not series:
            return None
        return float(sum(s.value for s in series))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """``name`` summed over every label except ``label``: {label value: sum}."""
        out: dict[str, float] = {}
        for s in self.samples.get(name, []):
            key = s.labels.get(label)
            if key is not None:
                out[key] = out.get(key, 0.0) + s.value
        return out

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [dict(s.labels) for s in self.samples.get(name, [])]


def _labels_match(labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def parse_metrics_text(text: str, taken_at: float | None = None) -> MetricsSnapshot:
    """Parse a Prometheus text exposition. ``*_created`` samples are dropped (§2.1: ignore them).

    Raises :class:`MetricsUnavailable` when the text is not a valid exposition. A counter or histogram sample
    whose value is not a finite number (NaN, +Inf, or too large for a float) cannot be a count: it is skipped
    with a note in ``notes`` so that it does not poison sums and deltas; gauges may be NaN and are kept.
    """
    samples: dict[str, list[MetricSample]] = {}
    types: dict[str, str] = {}
    notes: list[str] = []
    try:
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                # `_created` is a timestamp gauge emitted next to counters/histograms in single-process mode
                # (docs/reference/vllm-speculative-decoding.md §2.1); it is not a count and would poison sums and deltas.
                if sample.name.endswith("_created"):
                    continue
                try:
                    value = float(sample.value)
                except OverflowError:
                    value = math.inf
                if not math.isfinite(value) and family.type in ("counter", "histogram", "summary"):
                    shown = str(sample.value)
                    notes.append(f"{sample.name}: value {shown if len(shown) <= 20 else shown[:17] + '...'} "
                                 "is not a finite count; sample skipped")
                    continue
                samples.setdefault(sample.name, []).append(MetricSample(labels=dict(sample.labels), value=value))
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise MetricsUnavailable(f"/metrics is not a valid Prometheus exposition: {exc}") from exc
    return MetricsSnapshot(taken_at=time.time() if taken_at is None else taken_at, samples=samples, types=types,
                           notes=notes)


def metrics_url(base_url: str) -> str:
    """``http://host:port/metrics`` from a server base URL (with or without a trailing ``/v1``)."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + "/metrics"


async def scrape_metrics(
    base_url: str, client: httpx.AsyncClient | None = None, timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> MetricsSnapshot:
    """GET ``/metrics`` and parse it. Raises :class:`MetricsUnavailable` (never a transport error)."""
    url = metrics_url(base_url)
    own = client is None
    client = client or httpx.AsyncClient(timeout=timeout_s)
    try:
        resp = await client.get(url, timeout=timeout_s, headers=dict(headers or {}))
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            await client.aclose()
    if resp.status_code != 200:
        raise MetricsUnavailable(f"GET {url} returned HTTP {resp.status_code}")
    return parse_metrics_text(resp.text)


def scrape_metrics_sync(
    base_url: str, timeout_s: float = 10.0, headers: Mapping[str, str] | None = None
) -> MetricsSnapshot:
    """Blocking variant of :func:`scrape_metrics`."""
    url = metrics_url(base_url)
    try:
        resp = httpx.get(url, timeout=timeout_s, headers=dict(headers or {}))
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    if resp.status_code != 200:
        raise MetricsUnavailable(f"GET {url} returned HTTP {resp.status_code}")
    return parse_metrics_text(resp.text)

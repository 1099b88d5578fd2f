"""Engine/version-aware reading of Prometheus snapshots: spec-decode deltas and load gauges.

Facts encoded here (docs/reference/vllm-speculative-decoding.md §2, Appendix A, §6):

* vLLM V1 0.8.5+ exposes ``spec_decode_num_drafts_total``, ``…num_draft_tokens_total``,
  ``…num_accepted_tokens_total`` and ``…num_accepted_tokens_per_pos_total{position}``; labels
  ``model_name, engine`` (sum over ``engine`` for data parallel). A V1 "accepted" token is part of the
  accepted *prefix* of a draft (tokens after the first rejection are not counted).
* vLLM V1 0.8.3/0.8.4 has only the accepted and draft-token counters (no drafts, no positions).
* vLLM V0 (≤ 0.9.2) has ``spec_decode_draft_acceptance_rate`` and ``spec_decode_efficiency`` gauges and
  accepted/draft/emitted counters. Its "accepted" counts **every** accepted position, also after the
  first rejection, so its rate is inflated relative to V1's. V1-comparable mean acceptance length is
  ``efficiency × (k+1)`` = ``Δemitted × k / Δdraft_tokens``.
* SGLang (``sglang:`` prefix): ``spec_accept_length`` gauge (last decode-log interval),
  ``spec_accept_rate`` gauge (≥ 0.5.10), ``spec_verify_calls_total`` counter; a windowed acceptance
  length is ``Δgeneration_tokens_total / Δspec_verify_calls_total``.
* Counters reset when the server restarts: a decrease is treated as a reset (the post-restart value is
  the delta of that series, and the delta is flagged).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import numpy as np
from pydantic import Field

from specwise.metrics.prometheus import MetricsSnapshot
from specwise.schemas.base import SpecwiseModel

__all__ = [
    "EngineFlavor",
    "GaugeSample",
    "GaugeSummary",
    "MetricsDelta",
    "SpecDecodeDelta",
    "counter_delta",
    "delta",
    "detect_flavor",
    "kv_cache_capacity_tokens",
    "sample_gauges",
    "summarize_gauges",
]

V = "vllm:"
V1_DRAFTS = V + "spec_decode_num_drafts_total"
DRAFT_TOKENS = V + "spec_decode_num_draft_tokens_total"
ACCEPTED = V + "spec_decode_num_accepted_tokens_total"
ACCEPTED_PER_POS = V + "spec_decode_num_accepted_tokens_per_pos_total"
V0_EMITTED = V + "spec_decode_num_emitted_tokens_total"
V0_EFFICIENCY = V + "spec_decode_efficiency"
V0_RATE_GAUGE = V + "spec_decode_draft_acceptance_rate"
GENERATION_TOKENS = V + "generation_tokens_total"
PROMPT_TOKENS = V + "prompt_tokens_total"
PREEMPTIONS = V + "num_preemptions_total"
REQUEST_SUCCESS = V + "request_success_total"

SG = "sglang:"
SG_ACCEPT_LENGTH = SG + "spec_accept_length"
SG_ACCEPT_RATE = SG + "spec_accept_rate"
SG_VERIFY_CALLS = SG + "spec_verify_calls_total"
SG_GENERATION_TOKENS = SG + "generation_tokens_total"
SG_PROMPT_TOKENS = SG + "prompt_tokens_total"


class EngineFlavor(str, Enum):
    """Which metric family a server exposes (Appendix A step 1)."""

    vllm_v1 = "vllm_v1"  # V1, 0.8.5+: drafts + per-position counters
    vllm_v1_083 = "vllm_v1_083"  # V1 0.8.3/0.8.4: accepted + draft-token counters only
    vllm_v0 = "vllm_v0"  # V0 spec decode: efficiency gauge, emitted counter
    vllm_no_spec = "vllm_no_spec"  # vLLM without spec-decode metrics (spec off, or --disable-log-stats)
    sglang = "sglang"
    unknown = "unknown"


Semantics = Literal["v1_accepted_prefix", "v0_all_positions", "sglang", "none"]

SEMANTICS_TEXT: dict[str, str] = {
    "v1_accepted_prefix": "vLLM V1: accepted = tokens of the accepted draft prefix; rate = accepted/draft_tokens",
    "v0_all_positions": (
        "vLLM V0: accepted = every accepted draft position, also after the first rejection; this rate is "
        "inflated relative to V1's and must not be compared with it (see acceptance_rate_prefix_equivalent)"
    ),
    "sglang": "SGLang: acceptance length = generated tokens per verify call (bonus included)",
    "none": "no speculative-decoding metrics",
}


class SpecDecodeDelta(SpecwiseModel):
    """Speculative-decoding counters over a window (after - before), summed over engines."""

    flavor: EngineFlavor
    semantics: Semantics = Field(description="which definition acceptance_rate follows (see SEMANTICS_TEXT)")
    k: int | None = Field(None, description="draft length: from per-position series, or given by the caller")
    drafts: float | None = Field(None, description="d(num_drafts): request-steps that carried >= 1 draft token")
    draft_tokens: float | None = None
    accepted: float | None = None
    emitted: float | None = Field(None, description="V0 only: d(num_emitted_tokens)")
    acceptance_rate: float | None = Field(None, description="accepted / draft_tokens, with `semantics`")
    acceptance_rate_prefix_equivalent: float | None = Field(
        None, description="V0 only, needs k: emitted/draft_tokens - 1/k (V1-comparable prefix rate)"
    )
    mean_acceptance_length: float | None = Field(
        None, description="tokens per draft step including the bonus token: 1 + accepted/drafts (V1); "
        "efficiency*(k+1) (V0); d(generation_tokens)/d(verify_calls) (SGLang)"
    )
    per_position: list[float] | None = Field(None, description="V1: accepted_per_pos[i] / drafts, i = 0..k-1")
    efficiency: float | None = Field(None, description="V0: emitted / ((draft_tokens/k) * (k+1))")
    counter_reset: bool = False
    notes: list[str] = Field(default_factory=list)

    @property
    def semantics_text(self) -> str:
        return SEMANTICS_TEXT[self.semantics]

    @property
    def has_traffic(self) -> bool:
        return bool(self.draft_tokens) or bool(self.drafts) or self.mean_acceptance_length is not None


class MetricsDelta(SpecwiseModel):
    """Everything specwise reads from two scrapes of one window (one QPS x temperature cell)."""

    flavor: EngineFlavor
    window_s: float
    generation_tokens: float | None = None
    prompt_tokens: float | None = None
    preemptions: float | None = None
    requests_succeeded: float | None = None
    spec: SpecDecodeDelta | None = None
    counter_reset: bool = False
    notes: list[str] = Field(default_factory=list)


def detect_flavor(snap: MetricsSnapshot) -> EngineFlavor:
    """Engine generation from the metric names present (docs/reference/vllm-speculative-decoding.md Appendix A)."""
    if snap.has(V1_DRAFTS):
        return EngineFlavor.vllm_v1
    if snap.has(V0_EFFICIENCY) or snap.has(V0_EMITTED) or snap.has(V0_RATE_GAUGE):
        return EngineFlavor.vllm_v0
    if snap.has(ACCEPTED) and snap.has(DRAFT_TOKENS):
        return EngineFlavor.vllm_v1_083
    if any(n.startswith(SG) for n in snap.samples):
        return EngineFlavor.sglang
    if any(n.startswith(V) for n in snap.samples):
        return EngineFlavor.vllm_no_spec
    return EngineFlavor.unknown


def _series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def counter_delta(
    before: MetricsSnapshot, after: MetricsSnapshot, name: str, **match: str
) -> tuple[float | None, bool]:
    """(sum over series of after - before, whether any series reset). None when ``after`` lacks ``name``.

    A series absent before counts from 0 (it was created in the window); a series that decreased was
    reset by a restart, and its post-restart value is taken as its delta (what ran before the restart
    is lost, hence the flag).
    """
    after_series = [s for s in after.samples.get(name, []) if all(s.labels.get(k) == v for k, v in match.items())]
    if not after_series:
        return None, False
    prev = {_series_key(s.labels): s.value for s in before.samples.get(name, [])}
    total = 0.0
    reset = False
    for s in after_series:
        b = prev.get(_series_key(s.labels), 0.0)
        if s.value < b:
            reset = True
            total += s.value
        else:
            total += s.value - b
    return total, reset


def _positions(before: MetricsSnapshot, after: MetricsSnapshot) -> tuple[list[float], bool, list[str]]:
    """Per-position accepted deltas, whether a counter reset, and the ``position`` labels skipped as unreadable
    (not a whole number >= 0 below 1024, the longest draft any engine runs): a broken exporter costs those
    samples, never the run."""
    positions: dict[int, str] = {}
    skipped: list[str] = []
    for label in after.by_label(ACCEPTED_PER_POS, "position"):
        text = str(label)
        if text.isdigit() and int(text) < 1024:
            positions[int(text)] = text
        else:
            skipped.append(text[:40])
    out, any_reset = [], False
    for p in sorted(positions):
        d, r = counter_delta(before, after, ACCEPTED_PER_POS, position=positions[p])
        out.append(d or 0.0)
        any_reset |= r
    return out, any_reset, skipped


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _spec_delta(
    flavor: EngineFlavor, before: MetricsSnapshot, after: MetricsSnapshot, k: int | None
) -> SpecDecodeDelta | None:
    resets: list[bool] = []

    def cd(name: str) -> float | None:
        value, reset = counter_delta(before, after, name)
        resets.append(reset)
        return value

    if flavor is EngineFlavor.vllm_v1:
        drafts, draft_tokens, accepted = cd(V1_DRAFTS), cd(DRAFT_TOKENS), cd(ACCEPTED)
        per_pos_counts, pos_reset, skipped = _positions(before, after)
        resets.append(pos_reset)
        k_seen = len(per_pos_counts) or None
        out = SpecDecodeDelta(
            flavor=flavor, semantics="v1_accepted_prefix", k=k or k_seen, drafts=drafts,
            draft_tokens=draft_tokens, accepted=accepted, acceptance_rate=_ratio(accepted, draft_tokens),
            mean_acceptance_length=(1.0 + accepted / drafts) if drafts and accepted is not None else None,
            per_position=[c / drafts for c in per_pos_counts] if drafts and per_pos_counts else None,
        )
        if k and k_seen and k != k_seen:
            out.notes.append(f"server exposes {k_seen} draft positions but k={k} was given; using k={k}")
        if skipped:
            out.notes.append(f"skipped {len(skipped)} /metrics samples of {ACCEPTED_PER_POS} with an unreadable "
                             f"position label ({', '.join(repr(x) for x in skipped[:3])})")
    elif flavor is EngineFlavor.vllm_v1_083:
        draft_tokens, accepted = cd(DRAFT_TOKENS), cd(ACCEPTED)
        out = SpecDecodeDelta(
            flavor=flavor, semantics="v1_accepted_prefix", k=k, draft_tokens=draft_tokens, accepted=accepted,
            acceptance_rate=_ratio(accepted, draft_tokens),
        )
        if k and draft_tokens:
            # 0.8.3 has no drafts counter; with a fixed k every draft step proposes k tokens.
            out.drafts = draft_tokens / k
            out.mean_acceptance_length = 1.0 + accepted * k / draft_tokens if accepted is not None else None
            out.notes.append("vLLM 0.8.3/0.8.4 has no drafts counter: drafts = draft_tokens / k (fixed k assumed)")
        else:
            out.notes.append("vLLM 0.8.3/0.8.4: mean acceptance length needs k (no drafts counter)")
    elif flavor is EngineFlavor.vllm_v0:
        draft_tokens, accepted, emitted = cd(DRAFT_TOKENS), cd(ACCEPTED), cd(V0_EMITTED)
        out = SpecDecodeDelta(
            flavor=flavor, semantics="v0_all_positions", k=k, draft_tokens=draft_tokens, accepted=accepted,
            emitted=emitted, acceptance_rate=_ratio(accepted, draft_tokens),
        )
        if draft_tokens is None and after.total(V0_RATE_GAUGE) is not None:
            # Counters missing: only the cumulative gauges are left (since server start, not this window).
            out.acceptance_rate = after.total(V0_RATE_GAUGE)
            out.efficiency = after.total(V0_EFFICIENCY)
            out.notes.append("V0 counters absent: rate/efficiency are the cumulative gauges since server start")
        if k and draft_tokens and emitted is not None:
            steps = draft_tokens / k
            out.drafts = steps
            out.efficiency = emitted / (steps * (k + 1))
            out.mean_acceptance_length = out.efficiency * (k + 1)
            out.acceptance_rate_prefix_equivalent = max(0.0, emitted / draft_tokens - 1.0 / k)
        elif k and out.efficiency is not None:
            out.mean_acceptance_length = out.efficiency * (k + 1)
        elif not k:
            out.notes.append("V0 exposes no k: pass k to convert efficiency to mean acceptance length")
        out.notes.append(SEMANTICS_TEXT["v0_all_positions"])
    elif flavor is EngineFlavor.sglang:
        verify = cd(SG_VERIFY_CALLS)
        gen = cd(SG_GENERATION_TOKENS)
        gauge_len = after.total(SG_ACCEPT_LENGTH)
        if gauge_len is not None:
            gauge_len = float(np.mean([s.value for s in after.samples[SG_ACCEPT_LENGTH]]))
        out = SpecDecodeDelta(flavor=flavor, semantics="sglang", k=k, drafts=verify)
        if verify and gen is not None:
            out.mean_acceptance_length = gen / verify
        elif gauge_len is not None and gauge_len > 0:
            out.mean_acceptance_length = gauge_len
            out.notes.append("sglang:spec_accept_length is a gauge over the last decode-log interval, not this window")
        rate_gauge = after.samples.get(SG_ACCEPT_RATE)
        if rate_gauge:
            out.acceptance_rate = float(np.mean([s.value for s in rate_gauge]))
            out.notes.append("sglang:spec_accept_rate is a gauge over the last decode-log interval")
        elif k and out.mean_acceptance_length is not None:
            out.acceptance_rate = max(0.0, (out.mean_acceptance_length - 1.0) / k)
            out.notes.append("rate = (acceptance length - 1) / k (chain drafts assumed)")
        if out.mean_acceptance_length is None and out.acceptance_rate is None:
            return None
    else:
        return None
    out.counter_reset = any(resets)
    if out.counter_reset:
        out.notes.append("a counter decreased (server restart): counts before the restart are missing")
    return out


def delta(before: MetricsSnapshot, after: MetricsSnapshot, k: int | None = None) -> MetricsDelta:
    """Counters over the window between two snapshots of the same server."""
    flavor = detect_flavor(after)
    before_flavor = detect_flavor(before)
    notes: list[str] = []
    if before_flavor not in (flavor, EngineFlavor.unknown, EngineFlavor.vllm_no_spec):
        notes.append(f"metric family changed during the window ({before_flavor.value} -> {flavor.value})")
    notes.extend(after.notes)  # samples the parser skipped (non-finite counts)
    resets: list[bool] = []

    def cd(*names: str) -> float | None:
        for name in names:
            value, reset = counter_delta(before, after, name)
            if value is not None:
                resets.append(reset)
                return value
        return None

    spec = _spec_delta(flavor, before, after, k)
    out = MetricsDelta(
        flavor=flavor,
        window_s=max(0.0, after.taken_at - before.taken_at),
        generation_tokens=cd(GENERATION_TOKENS, SG_GENERATION_TOKENS),
        prompt_tokens=cd(PROMPT_TOKENS, SG_PROMPT_TOKENS),
        preemptions=cd(PREEMPTIONS),
        requests_succeeded=cd(REQUEST_SUCCESS),
        spec=spec,
        notes=notes,
    )
    out.counter_reset = any(resets) or bool(spec and spec.counter_reset)
    if out.counter_reset and not any("restart" in n for n in notes):
        out.notes.append("a counter decreased (server restart): counts before the restart are missing")
    return out


class GaugeSample(SpecwiseModel):
    """Load gauges at one instant (kv usage is a 0-1 fraction; requests summed over engines)."""

    t: float = Field(description="seconds from the start of the window")
    kv_cache_usage: float | None = None
    num_requests_running: float | None = None
    num_requests_waiting: float | None = None


def _mean_gauge(snap: MetricsSnapshot, name: str) -> float | None:
    series = snap.samples.get(name)
    if not series:
        return None
    return float(np.mean([s.value for s in series]))


def sample_gauges(snap: MetricsSnapshot, t: float = 0.0) -> GaugeSample:
    """KV usage (``kv_cache_usage_perc`` from 0.9.2, ``gpu_cache_usage_perc`` before; §2.5), running, waiting."""
    kv = _mean_gauge(snap, V + "kv_cache_usage_perc")
    if kv is None:
        kv = _mean_gauge(snap, V + "gpu_cache_usage_perc")
    if kv is None:
        kv = _mean_gauge(snap, SG + "token_usage")
    running = snap.total(V + "num_requests_running")
    if running is None:
        running = snap.total(SG + "num_running_reqs")
    waiting = snap.total(V + "num_requests_waiting")
    if waiting is None:
        waiting = snap.total(SG + "num_queue_reqs")
    return GaugeSample(t=t, kv_cache_usage=kv, num_requests_running=running, num_requests_waiting=waiting)


class GaugeSummary(SpecwiseModel):
    """Gauges sampled during one cell."""

    samples: int = 0
    kv_cache_usage_mean: float | None = None
    kv_cache_usage_max: float | None = None
    running_mean: float | None = None
    running_max: float | None = None
    waiting_mean: float | None = None
    waiting_max: float | None = None
    waiting_slope_per_s: float | None = Field(
        None, description="least-squares slope of waiting requests over time; > 0 sustained = queue growing"
    )


def summarize_gauges(samples: list[GaugeSample]) -> GaugeSummary:
    def stats(values: list[float | None]) -> tuple[float | None, float | None]:
        vals = [v for v in values if v is not None]
        return (float(np.mean(vals)), float(np.max(vals))) if vals else (None, None)

    kv = stats([s.kv_cache_usage for s in samples])
    run = stats([s.num_requests_running for s in samples])
    wait = stats([s.num_requests_waiting for s in samples])
    pts = [(s.t, s.num_requests_waiting) for s in samples if s.num_requests_waiting is not None]
    slope = None
    if len(pts) >= 3 and len({p[0] for p in pts}) >= 2:
        ts, ws = np.asarray(pts, dtype=float).T
        slope = float(np.polyfit(ts, ws, 1)[0])
    return GaugeSummary(
        samples=len(samples), kv_cache_usage_mean=kv[0], kv_cache_usage_max=kv[1], running_mean=run[0],
        running_max=run[1], waiting_mean=wait[0], waiting_max=wait[1], waiting_slope_per_s=slope,
    )


def kv_cache_capacity_tokens(snap: MetricsSnapshot) -> int | None:
    """KV capacity = num_gpu_blocks x block_size from ``vllm:cache_config_info`` labels (§2.5), summed over engines."""
    total = 0
    for labels in snap.label_sets(V + "cache_config_info"):
        try:
            blocks, size = int(labels["num_gpu_blocks"]), int(labels["block_size"])
        except (KeyError, ValueError):
            continue
        if blocks > 0 and size > 0:
            total += blocks * size
    return total or None

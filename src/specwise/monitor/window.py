"""One endpoint's sliding window: scrapes in, a windowed :class:`EndpointReading` out.

Every figure is a difference of two scrapes (the newest, and the newest one at least ``window_s`` older; the oldest
kept while the window is still filling), never a lifetime average: acceptance that collapsed ten minutes ago must not
be diluted by a day of good traffic. Spec-decode counters and load gauges are read by the bench adapters
(:mod:`specwise.metrics.adapters`), latency quantiles from histogram bucket deltas
(:mod:`specwise.metrics.histograms`).

Restarts: when any counter decreases between two consecutive scrapes, or the process start time that
prometheus_client's default process collector exposes changes (a restart during a long outage can leave counters
higher than before), the server restarted, so the window restarts
from an empty snapshot stamped at the last pre-restart scrape (counters count from 0 after a restart), and the
reading says so. A failed scrape leaves the window as it was; the next good scrape is compared with the last good one.
"""

from __future__ import annotations

import time
from collections import deque

from specwise.metrics import adapters as A
from specwise.metrics.histograms import histogram_delta
from specwise.metrics.prometheus import MetricsSnapshot
from specwise.monitor.health import HealthTracker
from specwise.schemas.monitor import EndpointReading, LatencyQuantiles, Thresholds

__all__ = ["EndpointWindow", "LATENCY_METRICS"]

# (reading field, candidate histograms in order of preference). TPOT: the per-request figure (0.11+) when present,
# else the per-step one (V0 / V1 <= 0.11), which with speculation spans 1 + accepted tokens (§2.5).
LATENCY_METRICS: dict[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "tpot": ("vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds",
             "sglang:time_per_output_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "sglang:inter_token_latency_seconds"),
    "e2e": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"),
}

_MODEL_SOURCES = ("vllm:num_requests_running", "vllm:generation_tokens_total", "sglang:num_running_reqs",
                  "sglang:generation_tokens_total")


def _new_process(before: MetricsSnapshot, after: MetricsSnapshot) -> bool:
    a, b = before.total("process_start_time_seconds"), after.total("process_start_time_seconds")
    return a is not None and b is not None and a != b


class EndpointWindow:
    """Keeps the scrapes of one endpoint that the window needs and turns them into readings."""

    def __init__(self, url: str, window_s: float, thresholds: Thresholds, k: int | None = None) -> None:
        self.url = url
        self.window_s = window_s
        self.thresholds = thresholds
        self.k = k if k is not None else thresholds.k
        self.history: deque[MetricsSnapshot] = deque()
        self.health = HealthTracker(thresholds)
        self.restarts = 0
        self._reset_in_window_until: float | None = None
        self.last_error: str | None = None

    # ---- input ------------------------------------------------------------------------------------------------
    def add(self, snap: MetricsSnapshot) -> None:
        if self.history:
            prev = self.history[-1]
            if A.delta(prev, snap, self.k).counter_reset or _new_process(prev, snap):
                self.restarts += 1
                # Counters restart from 0: an empty snapshot at the last good scrape makes the post-restart values the
                # deltas, and drops the pre-restart scrapes that no longer compare.
                self.history.clear()
                self.history.append(MetricsSnapshot(taken_at=prev.taken_at))
                self._reset_in_window_until = snap.taken_at + self.window_s
        self.history.append(snap)
        self.last_error = None
        self._trim()

    def _trim(self) -> None:
        newest = self.history[-1].taken_at
        # keep exactly one scrape at or before the window's start, so the delta covers the whole window
        while len(self.history) >= 2 and self.history[1].taken_at <= newest - self.window_s:
            self.history.popleft()

    def _base(self) -> MetricsSnapshot:
        return self.history[0]

    # ---- output -----------------------------------------------------------------------------------------------
    def failed(self, error: str, now: float | None = None) -> EndpointReading:
        """Reading for a scrape that failed: the server is gone (or not serving /metrics)."""
        now = time.time() if now is None else now
        self.last_error = error
        return EndpointReading(url=self.url, t=now, ok=False, error=error, restarts_seen=self.restarts,
                               health=self.health.update("down", None, [error], now))

    def reading(self, now: float | None = None) -> EndpointReading:
        if not self.history:
            raise RuntimeError("reading() before any scrape")
        after = self.history[-1]
        now = after.taken_at if now is None else now
        models = sorted({lab.get("model_name") for n in _MODEL_SOURCES for lab in after.label_sets(n)} - {None})
        engines = sorted({lab.get("engine") for n in _MODEL_SOURCES for lab in after.label_sets(n)} - {None})
        flavor = A.detect_flavor(after)
        out = EndpointReading(url=self.url, t=after.taken_at, ok=True, flavor=flavor.value, model_names=models,
                              engines=engines, restarts_seen=self.restarts,
                              health=self.health.current(now))
        gauges = A.sample_gauges(after)
        out.running_now = gauges.num_requests_running
        out.waiting = gauges.num_requests_waiting
        out.kv_cache_usage = gauges.kv_cache_usage
        for name, value in (("running requests", gauges.num_requests_running),
                            ("waiting requests", gauges.num_requests_waiting),
                            ("KV-cache usage", gauges.kv_cache_usage)):
            if value is None:
                out.missing.append(name)
        samples = [A.sample_gauges(s, s.taken_at - after.taken_at) for s in self.history if s.samples]
        summary = A.summarize_gauges(samples)
        out.running = summary.running_mean
        out.waiting_slope_per_s = summary.waiting_slope_per_s
        if len(self.history) < 2:
            out.health = self.health.update("warming_up", None, ["one scrape so far: the window needs two"], now)
            return out
        before = self._base()
        d = A.delta(before, after, self.k)
        out.window_s = d.window_s
        out.scrapes_in_window = len(self.history) - (0 if before.samples else 1)
        out.counter_reset = d.counter_reset or (self._reset_in_window_until is not None
                                               and after.taken_at < self._reset_in_window_until)
        if out.counter_reset:
            out.notes.append(f"server restarted (counters reset) within the window; {self.restarts} restart(s) seen")
        out.notes.extend(n for n in d.notes if "restart" not in n)
        win = d.window_s or None
        per_s = (lambda x: x / win if x is not None and win else None)
        out.generation_tokens_per_s = per_s(d.generation_tokens)
        out.requests_per_s = per_s(d.requests_succeeded)
        if d.generation_tokens is None:
            out.missing.append("generation tokens")
        spec = d.spec
        if spec is not None:
            out.k = spec.k
            out.acceptance_semantics = spec.semantics
            # Thresholds are in V1's prefix meaning; V0's own rate counts non-prefix acceptances (inflated).
            out.acceptance_rate = (spec.acceptance_rate_prefix_equivalent if spec.semantics == "v0_all_positions"
                                   else spec.acceptance_rate)
            out.mean_acceptance_length = spec.mean_acceptance_length
            out.per_position = spec.per_position
            out.drafted_tokens_per_s = per_s(spec.draft_tokens)
            out.accepted_tokens_per_s = per_s(spec.accepted)
            if spec.semantics == "v0_all_positions" and out.acceptance_rate is None:
                out.notes.append("V0 acceptance needs k to be comparable with the thresholds: pass --k")
        for fld, names in LATENCY_METRICS.items():
            for name in names:
                h = histogram_delta(before if before.samples else None, after, name)
                if h is None:
                    continue
                setattr(out, fld, LatencyQuantiles(metric=name, count=h.count, p50_s=h.quantile(0.5),
                                                   p95_s=h.quantile(0.95), p99_s=h.quantile(0.99), mean_s=h.mean))
                break
            else:
                if fld != "itl":
                    out.missing.append(f"{fld} histogram")
        # drafted tokens (vLLM) or verify calls (SGLang) in the window; SGLang's gauges outlive the traffic
        drafting = spec is not None and bool(spec.draft_tokens or spec.drafts)
        out.health = self.health.judge(out, spec_present=spec is not None, drafting=drafting, now=now)
        return out


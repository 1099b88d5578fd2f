"""Poll several ``/metrics`` endpoints on an interval and turn each poll into windowed readings.

All endpoints are scraped concurrently (one slow server does not delay the others); a scrape that fails becomes a
``down`` reading for that endpoint only. ``--record FILE`` appends every reading as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from specwise import __version__
from specwise.metrics.prometheus import MetricsUnavailable, scrape_metrics
from specwise.monitor.window import EndpointWindow
from specwise.schemas.monitor import STATE_SEVERITY, EndpointReading, MonitorReport, Thresholds

__all__ = ["Monitor", "run_loop", "run_once"]


class Monitor:
    """The windows of every watched endpoint."""

    def __init__(self, urls: list[str], window_s: float, thresholds: Thresholds, k: int | None = None,
                 timeout_s: float = 5.0) -> None:
        self.windows = [EndpointWindow(u, window_s, thresholds, k) for u in urls]
        self.window_s = window_s
        self.thresholds = thresholds
        self.timeout_s = timeout_s

    async def _one(self, client: httpx.AsyncClient, w: EndpointWindow) -> EndpointReading:
        try:
            snap = await scrape_metrics(w.url, client=client, timeout_s=self.timeout_s)
        except MetricsUnavailable as exc:
            return w.failed(str(exc))
        w.add(snap)
        return w.reading()

    async def poll(self, client: httpx.AsyncClient) -> list[EndpointReading]:
        return list(await asyncio.gather(*(self._one(client, w) for w in self.windows)))

    def report(self, readings: list[EndpointReading]) -> MonitorReport:
        worst = min((r.health.state for r in readings), key=lambda s: STATE_SEVERITY[s])
        return MonitorReport(tool_version=__version__, window_s=self.window_s, thresholds=self.thresholds,
                             readings=readings, worst_state=worst)


def _record(path: Path | None, readings: list[EndpointReading]) -> None:
    if path is None:
        return
    with path.open("a") as fh:
        for r in readings:
            fh.write(json.dumps(r.model_dump(mode="json")) + "\n")


async def run_loop(
    monitor: Monitor, interval_s: float, *, record: Path | None = None, duration_s: float | None = None,
    on_poll: Callable[[MonitorReport], None | Awaitable[None]] | None = None,
) -> MonitorReport | None:
    """Poll until cancelled (or ``duration_s`` elapsed); each poll goes to ``on_poll`` and the record file."""
    start = time.monotonic()
    last: MonitorReport | None = None
    async with httpx.AsyncClient(timeout=monitor.timeout_s) as client:
        while True:
            tick = time.monotonic()
            readings = await monitor.poll(client)
            _record(record, readings)
            last = monitor.report(readings)
            if on_poll is not None:
                maybe = on_poll(last)
                if asyncio.iscoroutine(maybe):
                    await maybe
            if duration_s is not None and time.monotonic() - start >= duration_s:
                return last
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - tick)))


async def run_once(monitor: Monitor, interval_s: float, *, record: Path | None = None) -> MonitorReport:
    """Scrape every ``interval_s`` across one window and return the readings of the last poll (for scripts, cron)."""
    out = await run_loop(monitor, min(interval_s, monitor.window_s), record=record, duration_s=monitor.window_s)
    assert out is not None
    return out

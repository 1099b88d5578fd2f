"""One bench cell: (role, repeat, qps, temperature) sent, recorded, summarised and stored.

A cell's requests and send times depend only on (seed, repeat, qps, temperature), never on the role, so
both arms see identical traffic. /metrics is scraped right before and right after the cell (acceptance
belongs to exactly that traffic) and its load gauges are sampled during it.

Accounting: every request whose send began ends as exactly one record (success, or a failure with an
``error_kind``: a malformed reply, a client fault, or ``cancelled`` when the error budget stopped the
cell), and ``requests_ok + requests_failed == sent`` is checked before the cell is stored. Every task
the cell starts is awaited (within limits, see below) before it returns, so no exception goes unobserved.
A /metrics answer that cannot be read costs its samples, with a note on the cell, never the run.

Ending: once the requests are done, every wait is bounded (:mod:`specwise.bench.settle`): the gauge sampler
is stopped by a flag as well as a cancel (a cancel can be lost inside httpx/anyio), the final /metrics
scrape has a time limit, and so does the drain of the last streams. What does not settle in time is left
behind, said in the cell's ``unsettled`` (a warning finding), and the cell is stored from its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from typing import Protocol

import numpy as np

from specwise.bench.arrivals import ArrivalSpec, requests_for_duration, schedule
from specwise.bench.client import StreamingClient, drain_cut_note, failed_record, stopped_record
from specwise.bench.config import BenchConfig
from specwise.bench.settle import bounded, settle
from specwise.bench.shards import ShardedSender
from specwise.bench.store import RunStore, StoreWriteError
from specwise.bench.workloads import RequestSpec, Workload
from specwise.metrics.adapters import GaugeSample, GaugeSummary, MetricsDelta, delta, sample_gauges, summarize_gauges
from specwise.metrics.definitions import (
    SaturationVerdict,
    achieved_completion_rate,
    detect_saturation,
    summarize_cell,
)
from specwise.metrics.prometheus import MetricsSnapshot, MetricsUnavailable, scrape_metrics
from pydantic import Field

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import CellSummary, RequestRecord, Role

__all__ = ["CellRun", "CellRunner", "Progress", "RecordAccountingError", "attach_metrics", "cell_id", "cell_seed"]


class CellRun(SpecwiseModel):
    """One finished cell of one arm (a line of cells.jsonl)."""

    cell_id: str
    role: Role
    qps: float | None
    temperature: float | None
    repeat: int
    attempt: int
    summary: CellSummary
    metrics: MetricsDelta | None = None
    metrics_error: str | None = None
    gauges: GaugeSummary | None = None
    saturation: SaturationVerdict
    aborted: str | None = None
    sent: int | None = None  # requests whose send began (None: written before this was recorded)
    notes: list[str] = Field(default_factory=list)
    # what did not end within its limit after the cell's requests (gauge sampler, final /metrics scrape, a
    # stream past the drain limit): the cell was stored without waiting for it
    unsettled: list[str] = Field(default_factory=list)
    # wall clock (Unix seconds) of the cell's first /metrics scrape and of its storing: what joins a cell with the
    # server's own monitoring (Prometheus, nvidia-smi logs); None in runs written before they were recorded
    started_at: float | None = None
    ended_at: float | None = None


class Progress(Protocol):
    def cell_started(self, cell_id: str, n_requests: int) -> None: ...
    def request_done(self, record: RequestRecord) -> None: ...
    def cell_finished(self, cell: CellRun) -> None: ...
    def message(self, text: str) -> None: ...


class NoProgress:
    def cell_started(self, cell_id: str, n_requests: int) -> None:
        pass

    def request_done(self, record: RequestRecord) -> None:
        pass

    def cell_finished(self, cell: CellRun) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class RecordAccountingError(RuntimeError):
    """A cell's records do not match the requests it sent (a bug in the bench, never the server's fault)."""


def cell_id(role: str, repeat: int, qps: float | None, temperature: float | None) -> str:
    t = "mix" if temperature is None else f"{temperature:g}"
    q = "closed" if qps is None else f"{qps:g}"
    return f"{role}/r{repeat}/q{q}/t{t}"


def cell_seed(seed: int, repeat: int, qps: float | None, temperature: float | None) -> int:
    """The seed of one cell's prompts and schedule: from (seed, repeat, qps, temperature), not the role."""
    key = f"{seed}|{repeat}|{qps}|{temperature}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def attach_metrics(summary: CellSummary, metrics: MetricsDelta | None, error: str | None,
                   gauges: GaugeSummary | None, records: list[RequestRecord]) -> None:
    """Put a cell's /metrics delta, gauges and token-counting facts on its summary (and say what is missing)."""
    if metrics is not None and metrics.spec is not None and metrics.spec.has_traffic:
        sp = metrics.spec
        if sp.semantics == "v0_all_positions" and sp.acceptance_rate_prefix_equivalent is not None:
            summary.acceptance_rate_metrics = sp.acceptance_rate_prefix_equivalent
            summary.acceptance_semantics_metrics = "v1_prefix_equivalent_from_v0"
        else:
            summary.acceptance_rate_metrics = sp.acceptance_rate
            summary.acceptance_semantics_metrics = sp.semantics
        summary.mean_acceptance_length_metrics = sp.mean_acceptance_length
        summary.per_position_acceptance_metrics = sp.per_position
    if summary.role == "speculative":
        if metrics is None:
            summary.metrics_note = (f"/metrics unavailable ({error}); acceptance is the per-request estimate only"
                                    if error else None)
        elif metrics.spec is None or not metrics.spec.has_traffic:
            summary.metrics_note = (f"/metrics has no spec-decode counters ({metrics.flavor}): spec decode off, or "
                                    "--disable-log-stats; acceptance is the per-request estimate only")
    if gauges is not None:
        summary.kv_cache_usage_max = gauges.kv_cache_usage_max
        summary.num_requests_waiting_max = gauges.waiting_max
        summary.mean_batch_size = gauges.running_mean
    ok = [r for r in records if r.ok]
    if ok:
        summary.token_count_method = Counter(r.token_count_method for r in ok).most_common(1)[0][0]
        summary.chunk_estimate_safe_share = sum(r.chunk_estimate_safe for r in ok) / len(ok)


def _skipped_sample_notes(metrics: MetricsDelta | None) -> list[str]:
    if metrics is None:
        return []
    notes = list(metrics.notes) + (list(metrics.spec.notes) if metrics.spec is not None else [])
    return [n for n in notes if "unreadable" in n]


class CellRunner:
    """Plans and runs cells of one bench config into its store."""

    # Limits of the waits around a cell, so that a cell always ends (tests lower them):
    settle_timeout_s = 15.0  # for the gauge sampler to stop (a scrape in flight has httpx's 10 s per phase)
    scrape_timeout_s = 30.0  # for one /metrics scrape before or after the cell, whole
    drain_grace_s = 30.0  # for the last streams, past the client's own limit (two attempts of timeout_s)

    def __init__(self, cfg: BenchConfig, store: RunStore, workload: Workload, progress: Progress | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.workload = workload
        self.progress = progress or NoProgress()

    def arrival(self, qps: float | None) -> ArrivalSpec:
        return ArrivalSpec(kind=self.cfg.arrival, rate=qps, burstiness=self.cfg.burstiness,
                           concurrency=self.cfg.concurrency)

    def requests(self, qps: float | None, temperature: float | None, repeat: int) -> list[RequestSpec]:
        """The cell's requests with their send times; independent of the role by construction."""
        seed = cell_seed(self.cfg.seed, repeat, qps, temperature)
        arrival = self.arrival(qps)
        if self.cfg.num_requests is not None:
            n = self.cfg.num_requests
        else:
            n = requests_for_duration(arrival, self.cfg.duration_s)  # type: ignore[arg-type]
        reqs = self.workload.sample(n, seed=seed, temperature=temperature)
        for r, t in zip(reqs, schedule(arrival, n, seed)):
            r.scheduled_s = t
        return reqs

    async def scrape(self, client: StreamingClient) -> tuple[MetricsSnapshot | None, str | None]:
        try:
            return await scrape_metrics(client.cfg.root, headers=client.auth_headers), None
        except MetricsUnavailable as exc:
            return None, str(exc)

    async def scrape_within(self, client: StreamingClient) -> tuple[MetricsSnapshot | None, str | None, bool]:
        """:meth:`scrape` within ``scrape_timeout_s``: (snapshot, error, answered in time)."""
        answered, result = await bounded(self.scrape(client), self.scrape_timeout_s)
        if not answered or result is None:
            return None, f"GET {client.cfg.root}/metrics gave no answer within {self.scrape_timeout_s:g} s", False
        return result[0], result[1], True

    async def run(self, client: StreamingClient, role: Role, qps: float | None, temperature: float | None,
                  repeat: int, *, attempt: int, k: int | None, coalesced: bool = False,
                  sender: ShardedSender | None = None) -> tuple[CellRun, list[RequestRecord]]:
        """Send the cell, check that every sent request has its record, summarise and store it: (cell, records
        in request order)."""
        cid = cell_id(role, repeat, qps, temperature)
        reqs = self.requests(qps, temperature, repeat)
        by_id = {r.request_id: r for r in reqs}
        self.progress.cell_started(cid, len(reqs))
        started_at = time.time()
        max_per_step = (k + 1) if (role == "speculative" and k) else (None if role == "speculative" else 1)
        before, metrics_error, _ = await self.scrape_within(client)
        gauges: list[GaugeSample] = []
        notes: list[str] = []
        unsettled: list[str] = []
        records: dict[str, RequestRecord] = {}
        sent: set[str] = set()
        failures = 0
        write_errors: list[StoreWriteError] = []
        budget = max(5, int(np.ceil(self.cfg.error_budget * len(reqs))))
        abort = asyncio.Event()
        drain_expired = asyncio.Event()  # the last streams outlived the drain limit: they are being cancelled
        stop = asyncio.Event()  # the gauge sampler's end: a flag it checks, since a cancel can be lost (settle.py)
        drain_s = 2 * client.cfg.timeout_s + self.drain_grace_s
        t0 = time.perf_counter()

        def on_done(record: RequestRecord) -> bool:
            nonlocal failures
            if record.request_id in records:  # a second answer to one request: keep the first
                notes.append(f"a second record for request {record.request_id} was dropped")
                return abort.is_set()
            if coalesced:  # --stream-interval N > 1: the server itself packs several steps into a chunk
                record.chunk_estimate_safe = False
            records[record.request_id] = record
            try:
                self.store.append_record(cid, attempt, record)
            except StoreWriteError as exc:  # disk full, ...: stop sending, re-raised once the tasks are done
                write_errors.append(exc)
                abort.set()
                return True
            self.progress.request_done(record)
            if not record.ok:
                failures += 1
                if failures >= budget and self.cfg.error_budget < 1:
                    abort.set()
            return abort.is_set()

        def sent_s() -> float:
            return time.perf_counter() - t0

        async def send(req: RequestSpec) -> None:
            sent.add(req.request_id)
            try:
                out = await client.send(req, role=role, qps=qps, repeat=repeat, phase_t0=t0,
                                        max_tokens_per_step=max_per_step)
            except asyncio.CancelledError:
                if abort.is_set():  # the error budget stopped the cell: the request was sent, say so
                    on_done(stopped_record(req, role=role, qps=qps, repeat=repeat))
                elif drain_expired.is_set():
                    on_done(stopped_record(req, role=role, qps=qps, repeat=repeat, drain_s=drain_s))
                raise
            on_done(out.record)

        async def sample_loop() -> None:
            unreadable = 0
            # Not `while True`: with anyio < 4.16 the cancel that ends the cell can be swallowed inside the
            # scrape's connect (anyio #1214), and a loop that only a cancel ends then polls /metrics for ever.
            while not stop.is_set():
                try:
                    snap, _ = await self.scrape(client)
                    if snap is not None and not stop.is_set():  # a sample after the cell's end is not its load
                        gauges.append(sample_gauges(snap, t=sent_s()))
                except (ValueError, TypeError, ArithmeticError, OSError):
                    unreadable += 1
                    if unreadable == 1:
                        notes.append("skipped /metrics gauge samples that could not be read")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.cfg.gauge_interval_s)

        sampler = asyncio.create_task(sample_loop()) if before is not None else None
        tasks: set[asyncio.Task] = set()
        try:
            if self.cfg.arrival == "closed_loop":
                queue = list(reversed(reqs))

                async def worker() -> None:
                    while queue and not abort.is_set():
                        await send(queue.pop())

                await asyncio.gather(*(worker() for _ in range(self.cfg.concurrency or 1)))
            elif sender is not None:
                shard_sent, cut = await sender.run_cell(reqs, t0=t0, role=role, qps=qps, repeat=repeat,
                                                        max_per_step=max_per_step, on_record=on_done,
                                                        drain_s=drain_s, settle_s=self.settle_timeout_s)
                sent |= shard_sent
                if cut:
                    drain_expired.set()
                    unsettled.append(drain_cut_note(cut, drain_s))
            else:
                for req in reqs:
                    delay = t0 + req.scheduled_s - time.perf_counter()
                    if delay > 0:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(abort.wait(), delay)
                    if abort.is_set():
                        break
                    task = asyncio.create_task(send(req))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if abort.is_set():
                    for t in list(tasks):
                        t.cancel()
                if tasks:
                    # every stream has the client's own time limit; this bounds the drain whatever happens
                    _, late = await asyncio.wait(set(tasks), timeout=drain_s)
                    if late:  # cancelled, each recorded as a timeout by send(): nothing already measured is lost
                        drain_expired.set()
                        await settle(late, 0)
                        unsettled.append(drain_cut_note(len(late), drain_s))
        finally:
            # No task outlives the cell (Ctrl-C included): each is cancelled and awaited, within limits. The
            # sampler also gets its stop flag, so it ends after its current scrape even if the cancel is lost.
            stop.set()
            started = [t for t in (*tasks, sampler) if t is not None]
            left = await settle(started, 0, grace_s=self.settle_timeout_s)
            if sampler in left:
                unsettled.append(f"the /metrics gauge sampler did not stop within {self.settle_timeout_s:g} s of "
                                 "the cell's end (left to finish its scrape); the cell's gauges are those "
                                 "sampled before")
            if left - {sampler}:
                unsettled.append(f"{len(left - {sampler})} request tasks did not end within "
                                 f"{self.settle_timeout_s:g} s of being cancelled")
        if write_errors:
            raise write_errors[0]
        after, err_after, answered = await self.scrape_within(client)
        if not answered:
            unsettled.append(f"the final /metrics scrape was given up ({err_after}): the cell has no /metrics "
                             "delta")
        metrics = None
        if before is not None and after is not None:
            try:
                metrics = delta(before, after, k=k)
            except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
                metrics_error = f"/metrics could not be read ({type(exc).__name__}: {str(exc)[:120]})"
        metrics_error = metrics_error or err_after
        notes += _skipped_sample_notes(metrics)
        ordered = self._account(cid, attempt, reqs, by_id, sent, records, role, qps, repeat, notes)
        gauge_summary = summarize_gauges(gauges) if gauges else None
        summary = summarize_cell(ordered, role=role, source=Source.measured, qps=qps, temperature=temperature, k=k)
        if self.cfg.arrival == "closed_loop":
            summary.load_kind, summary.load = "concurrency", float(self.cfg.concurrency or 1)
        attach_metrics(summary, metrics, metrics_error, gauge_summary, ordered)
        if summary.requests_ok + summary.requests_failed != len(sent):
            raise RecordAccountingError(f"{cid}: {summary.requests_ok} ok + {summary.requests_failed} failed "
                                        f"records for {len(sent)} requests sent")
        ok = [r for r in ordered if r.ok and r.sent_s is not None and r.ttft_s is not None]
        saturation = detect_saturation(
            [r.sent_s for r in ok], [r.ttft_s for r in ok],
            offered_rate=qps if self.cfg.arrival != "closed_loop" else None,
            achieved_rate=achieved_completion_rate([r.sent_s for r in ok], [r.e2e_s for r in ok]),
            waiting_slope_per_s=gauge_summary.waiting_slope_per_s if gauge_summary else None,
            waiting_max=gauge_summary.waiting_max if gauge_summary else None,
        )
        summary.saturated = saturation.saturated
        for what in unsettled:
            self.progress.message(f"{cid}: {what}")
        cell = CellRun(cell_id=cid, role=role, qps=qps, temperature=temperature, repeat=repeat, attempt=attempt,
                       summary=summary, metrics=metrics, metrics_error=metrics_error, gauges=gauge_summary,
                       saturation=saturation, sent=len(sent), notes=notes, unsettled=unsettled,
                       started_at=started_at, ended_at=time.time(),
                       aborted=(f"error budget exceeded: {failures} of {len(ordered)} requests failed"
                                if abort.is_set() else None))
        self.store.append_cell(cell)
        self.progress.cell_finished(cell)
        return cell, ordered

    def _account(self, cid: str, attempt: int, reqs: list[RequestSpec], by_id: dict[str, RequestSpec], sent: set[str],
                 records: dict[str, RequestRecord], role: Role, qps: float | None, repeat: int,
                 notes: list[str]) -> list[RequestRecord]:
        """The cell's records in request order, one per sent request: a sent request without a record (a bug
        upstream) gets a failure record written now; a record for a request never sent is a bug."""
        stray = set(records) - sent
        if stray:
            raise RecordAccountingError(f"records for requests that were never sent: {sorted(stray)[:3]}")
        missing = [rid for rid in sent if rid not in records]
        for rid in sorted(missing):
            rec = failed_record(by_id[rid], role=role, qps=qps, repeat=repeat, error_kind="no_record",
                                error="the client returned no record for this request")
            records[rid] = rec
            self.store.append_record(cid, attempt, rec)
        if missing:
            notes.append(f"{len(missing)} sent requests had no record and were recorded as failed (no_record)")
        return [records[r.request_id] for r in reqs if r.request_id in records]

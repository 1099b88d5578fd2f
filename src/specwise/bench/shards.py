"""Shard a cell's streams over client worker processes (``--client-workers N``, default ``auto``).

A client process has finite capacity: past it, chunks of a stream wait in the socket until the
previous ones are handled and are then read together, sharing one arrival time (with loop-time
stamps, over TLS, a busy loop delays every stamp long before that). Each worker is a separate
process with its own event loop and connections; the runner hands every worker its share of the
cell's requests with the cell's start time. ``time.perf_counter`` is CLOCK_MONOTONIC on Linux and
therefore shared by processes, so workers send at the same schedule offsets and report ``sent_s``
relative to the same phase start as a single-process run. Records stream back over a queue as they
complete and are stored by the parent, as in a single-process run; each worker ends its share with the
ids it sent, so the parent can check that every sent request came back as a record. Workers die with
their parent (:func:`die_with_parent`), ``kill -9`` included.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import time
from collections.abc import Callable

from specwise.bench.client import ClientConfig, StreamingClient, run_async, stopped_record
from specwise.bench.workloads import RequestSpec
from specwise.errors import UserError
from specwise.schemas.results import RequestRecord

__all__ = ["CHUNKS_PER_S_PER_WORKER", "ClientWorkerDied", "ShardedSender", "default_client_workers", "die_with_parent"]

_STOP = "stop"
_DONE = "done"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ClientWorkerDied(UserError):
    """A client worker process died mid-cell (killed, out of memory) or hung past the cell's drain limit: the run
    stops, what was stored is intact."""

    exit_code = 1


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``).

    A bench killed with ``kill -9`` runs no cleanup, so without this its client workers would keep
    streaming (and holding the endpoint's connections) as orphans. Returns False where unsupported.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return True


def _worker_main(cfg_json: str, inbox, outbox, abort, drained, parent_pid: int) -> None:  # noqa: ANN001
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        return
    cfg = ClientConfig.model_validate_json(cfg_json)

    async def serve() -> None:
        async with StreamingClient(cfg) as client:
            loop = asyncio.get_running_loop()
            while True:
                msg = await loop.run_in_executor(None, inbox.get)
                if msg == _STOP:
                    return
                t0, role, qps, repeat, max_per_step, drain_s, reqs_json = msg
                reqs = [RequestSpec.model_validate_json(r) for r in reqs_json]
                tasks = []
                sent: list[str] = []

                async def send(req: RequestSpec) -> None:
                    sent.append(req.request_id)
                    try:
                        out = await client.send(req, role=role, qps=qps, repeat=repeat, phase_t0=t0,
                                                max_tokens_per_step=max_per_step)
                        record = out.record
                    except asyncio.CancelledError:  # the parent stopped the cell: the request was sent
                        record = stopped_record(req, role=role, qps=qps, repeat=repeat,
                                                drain_s=drain_s if drained.is_set() else None)
                    outbox.put(record.model_dump_json())

                for req in reqs:
                    delay = t0 + req.scheduled_s - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if abort.is_set():
                        break
                    tasks.append(asyncio.create_task(send(req)))
                # the parent may stop the cell while streams are still running (error budget, drain limit)
                pending = set(tasks)
                while pending and not abort.is_set():
                    _, pending = await asyncio.wait(pending, timeout=0.2)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                outbox.put((_DONE, sent))  # this worker's share of the cell is done, and what it sent

    run_async(serve())


class ShardedSender:
    """N worker processes streaming one endpoint's requests (open-loop schedules)."""

    def __init__(self, cfg: ClientConfig, workers: int) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process that runs an event loop and threads
        self.workers = workers
        self.outbox = ctx.Queue()
        self.abort = ctx.Event()
        self.drained = ctx.Event()  # set with abort when the drain limit ended the cell (records say timeout)
        self.inboxes = [ctx.Queue() for _ in range(workers)]
        self.procs = [ctx.Process(target=_worker_main, args=(cfg.model_dump_json(), q, self.outbox, self.abort,
                                                             self.drained, os.getpid()), daemon=True)
                      for q in self.inboxes]
        for p in self.procs:
            p.start()

    async def run_cell(self, reqs: list[RequestSpec], *, t0: float, role: str, qps: float | None, repeat: int,
                       max_per_step: int | None, on_record: Callable[[RequestRecord], bool],
                       drain_s: float = math.inf, settle_s: float = 15.0) -> tuple[set[str], int]:
        """Send ``reqs`` (round-robin over workers) at ``t0 + scheduled_s``; ``on_record`` returns True to abort.

        Streams still running ``drain_s`` after the last scheduled send are cancelled by their workers and recorded
        as timeouts, as in a single-process cell; a worker that has not finished ``settle_s`` later is hung, and
        the cell is not stored (:class:`ClientWorkerDied`). Returns the ids of the requests the workers sent (each
        has had its record passed to ``on_record``) and how many streams the drain limit cut."""
        self.abort.clear()
        self.drained.clear()
        sent: set[str] = set()
        for i, inbox in enumerate(self.inboxes):
            share = [r.model_dump_json() for r in reqs[i::self.workers]]
            inbox.put((t0, role, qps, repeat, max_per_step, drain_s, share))
        pending = self.workers
        loop = asyncio.get_running_loop()
        drain_end = t0 + max((r.scheduled_s for r in reqs), default=0.0) + drain_s
        cut = 0
        while pending:
            now = time.perf_counter()
            if now > drain_end and not self.drained.is_set():
                self.drained.set()
                self.abort.set()
            if self.drained.is_set() and now > drain_end + settle_s:
                raise ClientWorkerDied(f"{pending} client worker process(es) did not finish their share within "
                                       f"{settle_s:g} s of the cell's drain limit ({drain_s:g} s after its last "
                                       "send); the cell is not stored. Continue with the same options and --resume")
            try:
                item = await loop.run_in_executor(None, self.outbox.get, True, 1.0)
            except queue_mod.Empty:
                dead = [p for p in self.procs if not p.is_alive()]
                if dead:  # its requests in flight can never be accounted for: the cell cannot be stored
                    raise ClientWorkerDied(
                        f"client worker process {dead[0].pid} died (exit code {dead[0].exitcode}) in the middle of a "
                        "cell, taking its requests in flight with it; the cell is not stored. Continue with the "
                        "same options and --resume (fewer --client-workers if the host ran out of memory)") from None
                continue
            if isinstance(item, tuple) and item and item[0] == _DONE:
                pending -= 1
                sent.update(item[1])
                continue
            record = RequestRecord.model_validate_json(item)
            cut += self.drained.is_set() and record.error_kind == "timeout"
            if on_record(record):
                self.abort.set()
        return sent, cut

    def close(self) -> None:
        for inbox in self.inboxes:
            with contextlib.suppress(Exception):
                inbox.put(_STOP)
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.terminate()


# Peak chunks per second one client process streams within the accuracy target (P99 TTFT and ITL
# timing error < 2 ms) on 2 cores shared with the server (benchmarks/client_accuracy.py, step-synchronised
# chunks; benchmarks/results/client_accuracy_h100host_2core_*.json): with kernel stamps 500 streams x 40
# chunks/s held with P99 0.03 ms (1000 streams still held, at 0.9 of a core: no margin); with loop stamps
# 50 streams (2000 chunks/s) in one process missed it (ITL P99 2.2 ms) and held in two.
CHUNKS_PER_S_PER_WORKER = {"kernel": 20000.0, "loop": 1000.0}


def default_client_workers(peak_chunks_per_s: float, *, kernel_stamps: bool, cpus: int | None = None) -> int:
    """``--client-workers auto``: one process per ``CHUNKS_PER_S_PER_WORKER`` of peak offered chunk rate.

    With kernel receive stamps a late event loop no longer delays a chunk's time, so one process
    holds far more streams than with loop-time stamps (https). Capped at one less than the CPUs
    (the server or other arm may share the host), and at least 1.
    """
    per_worker = CHUNKS_PER_S_PER_WORKER["kernel" if kernel_stamps else "loop"]
    cap = max(1, (cpus if cpus is not None else (os.cpu_count() or 1)) - 1)
    return max(1, min(cap, math.ceil(peak_chunks_per_s / per_worker)))

"""Client accuracy and speed: is the bench client the bottleneck or the noise?

Drives a trivial local streaming server (its own process) at increasing concurrency with the real
bench client (:class:`specwise.bench.client.StreamingClient`, optionally sharded over worker processes
like ``specwise bench --client-workers``). The server logs the monotonic time just before it writes
every content chunk; the client's timestamps of the same chunks are compared with them (both use
CLOCK_MONOTONIC via ``time.perf_counter``, which processes on Linux share). Printed per level:

* chunks/s received (first send to last chunk) and client CPU microseconds per chunk (user+sys of
  the client process(es) over the level, connecting and stream parsing included, / chunks received),
* timing error of TTFT (client first-chunk time - server write time) and of every ITL gap
  (client gap - server gap, so a constant offset cancels), absolute values, P50 / P99 / max in ms,
* merged: chunks the client read together with the next chunk of their stream (it fell a whole
  inter-token gap behind); they share the later read's time,
* server lag: how late the server's step ticks ran behind its schedule (P50 / P99 / max, ms). The
  server logs actual write times, so its lag is not timing error; a large lag means the host is
  saturated and the level's load is lighter than scheduled.

The server is test scaffolding, not what is measured, so it is made as cheap as possible: a raw
``asyncio.Protocol`` HTTP/1.1 server writing precomputed chunked-encoding frames (no web framework
per chunk), so that on a 2-core host it leaves the CPU to the client. It runs on the standard event
loop, whose ``transport.write`` sends at once: the time it logs is the write's. With ``--pattern
step`` (the default) every active stream gets its next chunk in the same tick, as vLLM's engine steps
emit them: the worst case for a client, a burst of N chunks at once. ``--pattern spread`` gives every
stream its own phase. Stream lengths vary over [chunks/2, 3 chunks/2], so streams end (and are
parsed) while others still stream.

Timestamps are the client's own (kernel receive stamps on Linux, see specwise.bench.http_stream;
``--stamps loop`` forces event-loop stamps, the https path). Results: benchmarks/results/, one file
per machine and setting; the level at 500 streams decides the target line.

Target (issue 5): 500 concurrent streams with P99 timing error < 2 ms (TTFT and ITL) on the 2-core
machine. Pin server and client to two cores with ``taskset -c 0,1`` for the honest figure.

    taskset -c 0,1 python benchmarks/client_accuracy.py [--levels 50,100,250,500,1000] [--workers 1|N|auto]
        [--chunks 40] [--itl-ms 25] [--pattern step|spread] [--stamps kernel|loop] [--machine NAME]
        [--out benchmarks/results/client_accuracy_NAME.json] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import time

import numpy as np

from specwise.bench.client import ClientConfig, StreamingClient, run_async
from specwise.bench.workloads import Message, Prompt, RequestSpec

_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n")


def _frame(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _frames(chunks: int) -> list[bytes]:
    """Chunked-encoding frames of a vLLM-like stream: content chunks with continuous usage, [DONE], end."""
    out = []
    for i in range(chunks):
        data = {"id": "cmpl-x", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": f" w{i}"},
                             "finish_reason": "length" if i == chunks - 1 else None}],
                "usage": {"prompt_tokens": 3, "completion_tokens": i + 1, "total_tokens": i + 4}}
        out.append(_frame(f"data: {json.dumps(data)}\n\n".encode()))
    out[-1] += _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return out


class _Stream:
    __slots__ = ("transport", "frames", "next", "times")

    def __init__(self, transport: asyncio.Transport, frames: list[bytes], times: list[float]) -> None:
        self.transport, self.frames, self.next, self.times = transport, frames, 0, times


class _Server:
    def __init__(self, ttft_s: float, itl_s: float, pattern: str) -> None:
        self.ttft_s, self.itl_s, self.pattern = ttft_s, itl_s, pattern
        self.frames: dict[int, list[bytes]] = {}
        self.log: dict[str, list[float]] = {}
        self.lag_s: list[float] = []
        self.joining: list[tuple[float, _Stream]] = []
        self.active: list[_Stream] = []
        self.loop = asyncio.get_running_loop()
        self.epoch = time.perf_counter()
        self.tick_n = 0
        self.ticking = False

    def start_stream(self, transport: asyncio.Transport, rid: str, chunks: int) -> None:
        frames = self.frames.get(chunks) or self.frames.setdefault(chunks, _frames(chunks))
        transport.write(_HEAD)
        stream = _Stream(transport, frames, self.log.setdefault(rid, []))
        due = time.perf_counter() + self.ttft_s
        if self.pattern == "spread":
            self.loop.call_at(self._loop_time(due), self._emit_spread, stream, due)
            return
        self.joining.append((due, stream))
        if not self.ticking:
            self.ticking = True
            now = time.perf_counter()
            self.tick_n = int((now - self.epoch) / self.itl_s) + 1
            self._schedule_tick()

    def _loop_time(self, perf_t: float) -> float:
        return self.loop.time() + (perf_t - time.perf_counter())

    def _schedule_tick(self) -> None:
        self.loop.call_at(self._loop_time(self.epoch + self.tick_n * self.itl_s), self._tick)

    def _tick(self) -> None:
        """One engine step: every active stream's next chunk, written back to back."""
        scheduled = self.epoch + self.tick_n * self.itl_s
        clock = time.perf_counter
        now = clock()
        self.lag_s.append(now - scheduled)
        if self.joining:
            ready = [s for due, s in self.joining if due <= now]
            if ready:
                self.joining = [(due, s) for due, s in self.joining if due > now]
                self.active.extend(ready)
        still = []
        for s in self.active:
            s.times.append(clock())
            s.transport.write(s.frames[s.next])
            s.next += 1
            if s.next < len(s.frames):
                still.append(s)
        self.active = still
        if not self.active and not self.joining:
            self.ticking = False
            return
        # a late tick is not made up for: the next one is the next grid point still ahead
        self.tick_n = max(self.tick_n + 1, int((clock() - self.epoch) / self.itl_s) + 1)
        self._schedule_tick()

    def _emit_spread(self, s: _Stream, due: float) -> None:
        self.lag_s.append(time.perf_counter() - due)
        s.times.append(time.perf_counter())
        s.transport.write(s.frames[s.next])
        s.next += 1
        if s.next < len(s.frames):
            due += self.itl_s
            self.loop.call_at(self._loop_time(due), self._emit_spread, s, due)


class _Conn(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: POST /v1/chat/completions streams, GET /log, POST /reset."""

    def __init__(self, server: _Server) -> None:
        self.server, self.buf = server, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for h in head[1:]:
                name, _, value = h.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
            method, path = head[0].split(" ")[:2]
            self._handle(method, path, body)

    def _reply(self, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                             % (len(data), data))

    def _handle(self, method: str, path: str, body: bytes) -> None:
        if path == "/v1/chat/completions":
            req = json.loads(body)
            self.server.start_stream(self.transport, req["messages"][0]["content"], int(req["max_tokens"]))
        elif path == "/log":
            self._reply({"chunks": self.server.log, "lag_s": self.server.lag_s})
        elif path == "/reset":
            self.server.log.clear()
            self.server.lag_s.clear()
            self._reply({})
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def _serve(port: int, ttft_s: float, itl_s: float, pattern: str, ready) -> None:  # noqa: ANN001
    async def main() -> None:
        server = _Server(ttft_s, itl_s, pattern)
        srv = await asyncio.get_running_loop().create_server(lambda: _Conn(server), "127.0.0.1", port, backlog=4096)
        ready.set()
        await srv.serve_forever()

    # The standard loop, not uvloop: its transport.write sends at once, so a logged time is the write's;
    # uvloop queues writes to the end of the loop iteration, after the time was logged.
    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _length(rid: str, chunks: int) -> int:
    """Stream lengths spread over [chunks/2, 3 chunks/2], so streams end in different ticks (as in serving)."""
    i = int(rid.rsplit("-", 1)[1])
    return max(2, chunks // 2 + (i * 7919) % (chunks + 1))


async def _client_run(url: str, ids: list[str], chunks: int, stamps: str) -> tuple[list[dict], float]:
    cfg = ClientConfig(base_url=url, model="m", timeout_s=120)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    # only the loop-stamp comparison passes the argument (the aiohttp client before it has none)
    async with StreamingClient(cfg, **({"kernel_stamps": False} if stamps == "loop" else {})) as client:
        async def one(rid: str) -> dict:
            max_tokens = _length(rid, chunks)
            p = Prompt(prompt_id=rid, category="x", messages=[Message(role="user", content=rid)])
            req = RequestSpec(index=0, request_id=rid, prompt=p, category="x", max_tokens=max_tokens, temperature=0)
            out = await client.send(req, role="baseline", phase_t0=t0)
            r = out.record
            return {"id": rid, "ok": r.ok, "send": t0 + (r.sent_s or 0.0), "offsets": r.chunk_offsets_s,
                    "tokens": r.output_tokens, "expected": max_tokens, "error": r.error}
        results = await asyncio.gather(*(one(i) for i in ids))
    return results, time.process_time() - cpu0


def _worker(url: str, ids: list[str], chunks: int, stamps: str, start, q) -> None:  # noqa: ANN001
    q.put("ready")
    start.wait()  # every worker starts its streams together, as one process would
    q.put(run_async(_client_run(url, ids, chunks, stamps)))


def _get(url: str, path: str, method: str = "GET") -> dict:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url + path, method=method, data=b"" if method == "POST"
                                                       else None), timeout=60) as resp:
        return json.loads(resp.read())


def _pct(a: np.ndarray, q: float) -> float | None:
    return float(np.percentile(a, q)) if a.size else None


def run_level(url: str, concurrency: int, workers: int, chunks: int, tag: str, stamps: str) -> dict:
    _get(url, "/reset", "POST")
    ids = [f"{tag}-{i}" for i in range(concurrency)]
    t_start = time.perf_counter()
    if workers <= 1:
        results, cpu = run_async(_client_run(url, ids, chunks, stamps))
    else:
        ctx = mp.get_context("spawn")  # as ShardedSender
        q, start = ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=_worker, args=(url, ids[i::workers], chunks, stamps, start, q))
                 for i in range(workers)]
        for p in procs:
            p.start()
        for _ in procs:  # interpreter start-up of the workers is not part of the level
            assert q.get() == "ready"
        t_start = time.perf_counter()
        start.set()
        results, cpu = [], 0.0
        for _ in procs:
            res, c = q.get()
            results.extend(res)
            cpu += c
        for p in procs:
            p.join()
    # the level's span: its start to the last chunk's arrival (worker teardown is not streaming)
    wall = max([r["send"] + r["offsets"][-1] for r in results if r["offsets"]], default=time.perf_counter()) - t_start
    log = _get(url, "/log")
    server_log, lag = log["chunks"], np.asarray(log["lag_s"]) * 1e3
    ttft_err, itl_err = [], []
    n_chunks = failed = bad_count = merged = 0
    for r in results:
        if not r["ok"]:
            failed += 1
            continue
        client_abs = np.asarray(r["offsets"]) + r["send"]
        server_abs = np.asarray(server_log[r["id"]])
        n_chunks += len(client_abs)
        if len(client_abs) != len(server_abs) or r["tokens"] != r["expected"]:
            bad_count += 1  # a chunk the client merged or missed: its times cannot be paired
            continue
        merged += int(np.count_nonzero(np.diff(client_abs) == 0))  # read together with the next chunk
        ttft_err.append(client_abs[0] - server_abs[0])
        itl_err.extend(np.diff(client_abs) - np.diff(server_abs))
    ttft = np.abs(np.asarray(ttft_err)) * 1e3
    itl = np.abs(np.asarray(itl_err)) * 1e3
    return {
        "concurrency": concurrency, "client_workers": workers, "failed": failed, "unpaired": bad_count,
        "chunks": n_chunks, "merged_chunks": merged, "wall_s": wall, "chunks_per_s": n_chunks / wall,
        "client_cpu_us_per_chunk": 1e6 * cpu / max(1, n_chunks),
        "ttft_err_ms_p50": _pct(ttft, 50), "ttft_err_ms_p99": _pct(ttft, 99),
        "ttft_err_ms_max": float(ttft.max()) if ttft.size else None,
        "itl_err_ms_p50": _pct(itl, 50), "itl_err_ms_p99": _pct(itl, 99),
        "itl_err_ms_max": float(itl.max()) if itl.size else None,
        "server_lag_ms_p50": _pct(lag, 50), "server_lag_ms_p99": _pct(lag, 99),
        "server_lag_ms_max": float(lag.max()) if lag.size else None,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="50,100,250,500")
    ap.add_argument("--workers", default="1", help="client processes; 'auto' = bench's --client-workers default")
    ap.add_argument("--chunks", type=int, default=40, help="content chunks per stream")
    ap.add_argument("--itl-ms", type=float, default=25.0)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--pattern", choices=["step", "spread"], default="step")
    ap.add_argument("--stamps", choices=["kernel", "loop"], default="kernel",
                    help="loop: the client stamps reads in data_received even where kernel stamps exist")
    ap.add_argument("--machine", default=platform.node(), help="label stored in the JSON")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    port = _free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, args.ttft_ms / 1e3, args.itl_ms / 1e3, args.pattern, ready),
                         daemon=True)
    server.start()
    ready.wait(20)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for level in [int(x) for x in args.levels.split(",")]:
            if args.workers == "auto":
                from specwise.bench.shards import default_client_workers  # absent before the auto default

                workers = default_client_workers(level * 1e3 / args.itl_ms, kernel_stamps=args.stamps == "kernel")
            else:
                workers = int(args.workers)
            rows.append(run_level(url, level, workers, args.chunks, f"c{level}", args.stamps))
    finally:
        server.terminate()
        server.join(5)
    # the target level when it was run, else the highest one
    worst = next((r for r in rows if r["concurrency"] == 500), max(rows, key=lambda r: r["concurrency"]))
    met = all((worst[k] is not None and worst[k] < 2.0) for k in ("ttft_err_ms_p99", "itl_err_ms_p99"))
    result = {
        "machine": args.machine, "cpu_model": _cpu_model(), "cpus": sorted(os.sched_getaffinity(0)),
        "loadavg_before": os.getloadavg(), "python": platform.python_version(),
        "chunks_per_stream": args.chunks, "itl_ms": args.itl_ms, "ttft_ms": args.ttft_ms, "pattern": args.pattern,
        "stamps": args.stamps, "levels": rows,
        "target": {"streams": worst["concurrency"], "p99_ms_below": 2.0, "met": met},
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"client accuracy on {args.machine} ({result['cpu_model']}, CPUs {result['cpus']}, load "
          f"{result['loadavg_before'][0]:.2f}): {args.chunks} chunks/stream, ITL {args.itl_ms:g} ms, pattern "
          f"{args.pattern}, {args.stamps} stamps; timing errors are |client - server write time| in ms (measured)")
    print(f"{'streams':>7} {'wrk':>3} {'fail':>4} {'merged':>6} {'chunks/s':>8} {'CPU us/chunk':>12} {'TTFT P50':>8} "
          f"{'TTFT P99':>8} {'TTFT max':>8} {'ITL P50':>7} {'ITL P99':>7} {'ITL max':>7} {'lag P99':>7} {'lag max':>7}")
    for r in rows:
        def f(key: str, width: int) -> str:
            v = r[key]
            return f"{v:>{width}.2f}" if v is not None else f"{'-':>{width}}"
        print(f"{r['concurrency']:>7} {r['client_workers']:>3} {r['failed'] + r['unpaired']:>4} "
              f"{r['merged_chunks']:>6} "
              f"{r['chunks_per_s']:>8.0f} {r['client_cpu_us_per_chunk']:>12.1f} {f('ttft_err_ms_p50', 8)} "
              f"{f('ttft_err_ms_p99', 8)} {f('ttft_err_ms_max', 8)} {f('itl_err_ms_p50', 7)} "
              f"{f('itl_err_ms_p99', 7)} {f('itl_err_ms_max', 7)} {f('server_lag_ms_p99', 7)} "
              f"{f('server_lag_ms_max', 7)}")
    print(f"target (P99 TTFT and ITL timing error < 2 ms at {worst['concurrency']} streams): "
          f"{'MET' if met else 'NOT MET'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

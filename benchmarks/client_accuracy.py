"""Client accuracy and speed: is the bench client the bottleneck or the noise?

Drives a trivial local streaming server (its own process) at increasing concurrency. The server logs
the monotonic time at which it wrote every content chunk; the client's timestamps of the same chunks
are compared with them (both use CLOCK_MONOTONIC via ``time.perf_counter``, shared by processes on
Linux). Printed per concurrency level:

* client CPU seconds per streamed chunk (user+sys of the client process(es) / chunks received),
* timing error of TTFT (client first-chunk time - server write time) and of each ITL gap
  (client gap - server gap), P50 / P99 / max in milliseconds.

Target (issue 5): 500 concurrent streams with P99 timing error < 2 ms on the 2-core machine; with
``--workers N`` the streams are sharded over N client processes.

    python benchmarks/client_accuracy.py [--levels 50,100,250,500] [--workers 1] [--chunks 40] [--itl-ms 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import socket
import sys
import time

import numpy as np
from aiohttp import web

from specwise.bench.client import ClientConfig, StreamingClient, run_async
from specwise.bench.workloads import Message, Prompt, RequestSpec


def _serve(port: int, chunks: int, ttft_s: float, itl_s: float, ready, cpus) -> None:  # noqa: ANN001
    if cpus:
        os.sched_setaffinity(0, cpus)
    log: dict[str, list[float]] = {}

    async def complete(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rid = body["messages"][0]["content"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        times: list[float] = []
        log[rid] = times
        start = time.perf_counter()
        for i in range(chunks):
            target = start + ttft_s + i * itl_s
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            data = {"choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                 "finish_reason": "length" if i == chunks - 1 else None}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": i + 1, "total_tokens": i + 4}}
            payload = f"data: {json.dumps(data)}\n\n".encode()
            times.append(time.perf_counter())
            await resp.write(payload)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def get_log(request: web.Request) -> web.Response:
        out = web.json_response(log)
        return out

    async def reset(request: web.Request) -> web.Response:
        log.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/log", get_log)
    app.router.add_post("/reset", reset)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def _cpus(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client_run(url: str, ids: list[str], max_tokens: int) -> tuple[list[dict], float]:
    cfg = ClientConfig(base_url=url, model="m", timeout_s=120)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with StreamingClient(cfg) as client:
        async def one(rid: str) -> dict:
            p = Prompt(prompt_id=rid, category="x", messages=[Message(role="user", content=rid)])
            req = RequestSpec(index=0, request_id=rid, prompt=p, category="x", max_tokens=max_tokens, temperature=0)
            out = await client.send(req, role="baseline", phase_t0=t0)
            r = out.record
            return {"id": rid, "ok": r.ok, "send": t0 + (r.sent_s or 0.0), "offsets": r.chunk_offsets_s,
                    "error": r.error}
        results = await asyncio.gather(*(one(i) for i in ids))
    return results, time.process_time() - cpu0


def _worker(url: str, ids: list[str], max_tokens: int, q) -> None:  # noqa: ANN001
    q.put(run_async(_client_run(url, ids, max_tokens)))


def run_level(url: str, concurrency: int, workers: int, chunks: int, level_tag: str) -> dict:
    import httpx

    httpx.post(url + "/reset")
    ids = [f"{level_tag}-{i}" for i in range(concurrency)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if workers <= 1:
        results, cpu = run_async(_client_run(url, ids, chunks))
    else:
        q: mp.Queue = mp.Queue()
        shards = [ids[i::workers] for i in range(workers)]
        procs = [mp.Process(target=_worker, args=(url, s, chunks, q)) for s in shards]
        for p in procs:
            p.start()
        results, cpu = [], 0.0
        for _ in procs:
            res, c = q.get()
            results.extend(res)
            cpu += c
        for p in procs:
            p.join()
    del ru0
    server_log = httpx.get(url + "/log", timeout=60).json()
    ttft_err, itl_err = [], []
    n_chunks = failed = 0
    for r in results:
        if not r["ok"]:
            failed += 1
            continue
        client_abs = np.asarray(r["offsets"]) + r["send"]
        server_abs = np.asarray(server_log[r["id"]])
        n = min(len(client_abs), len(server_abs))
        n_chunks += len(client_abs)
        if n == 0:
            continue
        ttft_err.append(client_abs[0] - server_abs[0])
        itl_err.extend(np.diff(client_abs[:n]) - np.diff(server_abs[:n]))
    ttft = np.abs(np.asarray(ttft_err)) * 1e3
    itl = np.abs(np.asarray(itl_err)) * 1e3
    return {
        "concurrency": concurrency, "workers": workers, "failed": failed, "chunks": n_chunks,
        "cpu_us_per_chunk": 1e6 * cpu / max(1, n_chunks),
        "ttft_err_ms_p50": float(np.percentile(ttft, 50)) if ttft.size else None,
        "ttft_err_ms_p99": float(np.percentile(ttft, 99)) if ttft.size else None,
        "itl_err_ms_p50": float(np.percentile(itl, 50)) if itl.size else None,
        "itl_err_ms_p99": float(np.percentile(itl, 99)) if itl.size else None,
        "itl_err_ms_max": float(itl.max()) if itl.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="50,100,250,500")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--itl-ms", type=float, default=25.0)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--client-cpus", default="", help="pin the client to these CPUs, e.g. 0,1 (2-core budget)")
    ap.add_argument("--server-cpus", default="", help="pin the server elsewhere, e.g. 2-7")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    port = _free_port()
    ready = mp.Event()
    server = mp.Process(target=_serve, args=(port, args.chunks, args.ttft_ms / 1e3, args.itl_ms / 1e3, ready,
                                             _cpus(args.server_cpus)), daemon=True)
    server.start()
    if args.client_cpus:
        os.sched_setaffinity(0, _cpus(args.client_cpus))  # worker processes inherit it
    ready.wait(10)
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for level in [int(x) for x in args.levels.split(",")]:
            rows.append(run_level(url, level, args.workers, args.chunks, f"c{level}"))
    finally:
        server.terminate()
        server.join(5)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    cpus = len(os.sched_getaffinity(0))
    print(f"client accuracy: client on {cpus} CPU(s), {args.chunks} chunks/stream, ITL {args.itl_ms:g} ms, "
          f"{args.workers} client process(es); errors vs server write times (ms)")
    print(f"{'streams':>8} {'failed':>6} {'chunks':>7} {'CPU us/chunk':>13} {'TTFT err P50':>13} {'TTFT err P99':>13}"
          f" {'ITL err P50':>12} {'ITL err P99':>12} {'ITL err max':>12}")
    for r in rows:
        print(f"{r['concurrency']:>8} {r['failed']:>6} {r['chunks']:>7} {r['cpu_us_per_chunk']:>13.1f} "
              f"{r['ttft_err_ms_p50']:>13.3f} {r['ttft_err_ms_p99']:>13.3f} {r['itl_err_ms_p50']:>12.3f} "
              f"{r['itl_err_ms_p99']:>12.3f} {r['itl_err_ms_max']:>12.3f}")
    worst = max(rows, key=lambda r: r["concurrency"])
    verdict = "MET" if (worst["itl_err_ms_p99"] or 99) < 2.0 and (worst["ttft_err_ms_p99"] or 99) < 2.0 else "NOT MET"
    print(f"target (P99 timing error < 2 ms at {worst['concurrency']} streams): {verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

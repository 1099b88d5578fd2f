"""Client worker processes: how many (``--client-workers auto``), and that none outlives its parent."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from specwise.bench.shards import CHUNKS_PER_S_PER_WORKER, default_client_workers


def test_one_worker_until_the_measured_capacity_then_one_per_capacity():
    per = CHUNKS_PER_S_PER_WORKER["kernel"]
    assert default_client_workers(0, kernel_stamps=True, cpus=16) == 1
    assert default_client_workers(per, kernel_stamps=True, cpus=16) == 1
    assert default_client_workers(per * 2.5, kernel_stamps=True, cpus=16) == 3


def test_loop_stamps_need_more_workers_than_kernel_stamps():
    rate = CHUNKS_PER_S_PER_WORKER["kernel"]
    assert default_client_workers(rate, kernel_stamps=False, cpus=64) > default_client_workers(
        rate, kernel_stamps=True, cpus=64)


def test_workers_leave_a_cpu_and_never_drop_below_one():
    assert default_client_workers(1e9, kernel_stamps=True, cpus=8) == 7
    assert default_client_workers(1e9, kernel_stamps=True, cpus=2) == 1
    assert default_client_workers(1e9, kernel_stamps=False, cpus=1) == 1


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by whoever adopted it is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's prctl")
def test_client_workers_die_when_the_bench_is_killed_9():
    # The workers are mid-cell (each streaming a request from a server that accepted the connection and never
    # answers), not reading their inbox: that is when they used to outlive a killed bench. The pids are
    # printed once every request's connection is accepted.
    script = (
        "import asyncio, socket, threading, time\n"
        "from specwise.bench.client import ClientConfig\n"
        "from specwise.bench.shards import ShardedSender\n"
        "from specwise.bench.workloads import build_workload\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(16)\n"
        "url = f'http://127.0.0.1:{srv.getsockname()[1]}'\n"
        "s = ShardedSender(ClientConfig(base_url=url, model='m'), 2)\n"
        "reqs = build_workload('chat').sample(4, seed=0)\n"
        "held = []\n"
        "def accept():\n"
        "    for _ in reqs: held.append(srv.accept())\n"
        "    print(' '.join(str(p.pid) for p in s.procs), flush=True)\n"
        "threading.Thread(target=accept, daemon=True).start()\n"
        "asyncio.run(s.run_cell(reqs, t0=time.perf_counter(), role='baseline', qps=1.0, repeat=0, max_per_step=1,"
        " on_record=lambda r: False))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), "client workers outlived their killed parent"
    finally:
        parent.kill()


@contextlib.contextmanager
def _sender_on_a_silent_server(n_requests: int = 4, workers: int = 2):
    """(sender, requests, accepted): two client workers against a socket that accepts every request's connection
    and never answers, so every request stays in flight; ``accepted`` is set once all are accepted."""
    import socket
    import threading

    from specwise.bench.client import ClientConfig
    from specwise.bench.shards import ShardedSender
    from specwise.bench.workloads import build_workload

    reqs = build_workload("chat").sample(n_requests, seed=0)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, accepted = [], threading.Event()

    def accept():
        for _ in reqs:
            held.append(srv.accept())
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    sender = ShardedSender(ClientConfig(base_url=f"http://127.0.0.1:{srv.getsockname()[1]}", model="m"), workers)
    try:
        yield sender, reqs, accepted
    finally:
        for p in sender.procs:
            p.kill()  # a SIGSTOPped worker ignores the stop message
        sender.close()
        srv.close()


def _start_cell(sender, reqs, **kw):
    import asyncio

    return asyncio.create_task(sender.run_cell(reqs, t0=time.perf_counter(), role="baseline", qps=1.0, repeat=0,
                                               max_per_step=1, **{"on_record": lambda r: False, **kw}))


async def test_a_worker_dying_mid_cell_stops_the_cell_with_a_clear_error():
    import asyncio

    from specwise.bench.shards import ClientWorkerDied

    with _sender_on_a_silent_server() as (sender, reqs, accepted):
        cell = _start_cell(sender, reqs)
        assert await asyncio.to_thread(accepted.wait, 60)
        os.kill(sender.procs[0].pid, signal.SIGKILL)
        with pytest.raises(ClientWorkerDied, match="died .* in the middle of a cell.*--resume"):
            await asyncio.wait_for(cell, 30)


async def test_streams_past_the_drain_limit_are_cut_and_recorded_as_timeouts_by_the_workers():
    # the single-process cell cancels streams still running drain_s after its last send; sharded cells used to
    # wait for each request's own 600-s limit
    import asyncio

    records = []
    with _sender_on_a_silent_server() as (sender, reqs, accepted):
        start = time.perf_counter()
        sent, cut = await asyncio.wait_for(_start_cell(sender, reqs, on_record=lambda r: records.append(r) or False,
                                                       drain_s=2.0, settle_s=15.0), 60)
        assert sent == {r.request_id for r in reqs} and cut == len(reqs)
        assert {r.error_kind for r in records} == {"timeout"} and "drain limit (2 s" in records[0].error
        assert time.perf_counter() - start < 30


async def test_a_frozen_worker_past_the_drain_limit_stops_the_cell_with_a_clear_error():
    import asyncio

    from specwise.bench.shards import ClientWorkerDied

    with _sender_on_a_silent_server() as (sender, reqs, accepted):
        cell = _start_cell(sender, reqs, drain_s=1.0, settle_s=2.0)
        assert await asyncio.to_thread(accepted.wait, 60)
        os.kill(sender.procs[0].pid, signal.SIGSTOP)  # alive, never answering: a hung worker
        with pytest.raises(ClientWorkerDied, match="did not finish their share within 2 s of the cell's drain "
                                                   "limit.*--resume"):
            await asyncio.wait_for(cell, 30)

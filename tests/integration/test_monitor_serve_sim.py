"""`specwise monitor` against serve-sim over real HTTP on 127.0.0.1: an acceptance collapse mid-run, load raised past
the crossover, a server that goes away and comes back (restarted counters), and the CLI's --once --json / --record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

import httpx
import pytest

from specwise.monitor.thresholds import resolve_thresholds
from specwise.monitor.watch import Monitor
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile, conditional_from_unconditional
from specwise.simulate.defaults import build_deployment
from specwise.simulate.serve_sim import ServeSimConfig, SimServer, start_server

pytestmark = pytest.mark.integration

MODEL = "sim-70b"
HIGH = [0.9, 0.8, 0.7]  # unconditional a_i: acceptance rate 0.80
LOW = [0.3, 0.1, 0.03]  # acceptance rate 0.143, what a broken draft after an upgrade looks like
WINDOW_S = 3.0
INTERVAL_S = 0.25


def _server(rates=HIGH, time_scale=0.2) -> SimServer:
    profile = AcceptanceProfile(classes=[AcceptanceClass(conditional=conditional_from_unconditional(rates),
                                                         heterogeneity=0.0)])
    dep, _ = build_deployment("meta-llama/Llama-3.1-70B-Instruct", "H100", 4,
                              draft_name="meta-llama/Llama-3.2-1B-Instruct", acceptance=profile, speculative=True,
                              kv_capacity_tokens=300_000)
    return SimServer(dep, ServeSimConfig(served_model_name=MODEL, k=3, time_scale=time_scale, admin=True))


class Load:
    """Closed-loop clients; ``concurrency`` can be changed while running."""

    def __init__(self, url: str, concurrency: int, max_tokens: int = 120) -> None:
        self.url, self.max_tokens = url, max_tokens
        self.tasks: list[asyncio.Task] = []
        self.client = httpx.AsyncClient(base_url=url, timeout=60)
        self.set(concurrency)

    async def _worker(self) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                await self.client.post("/v1/completions", json={"model": MODEL, "prompt": "hello " * 40,
                                                                "max_tokens": self.max_tokens, "temperature": 0})

    def set(self, concurrency: int) -> None:
        while len(self.tasks) < concurrency:
            self.tasks.append(asyncio.create_task(self._worker()))
        while len(self.tasks) > concurrency:
            self.tasks.pop().cancel()

    async def close(self) -> None:
        self.set(0)
        await asyncio.sleep(0)
        await self.client.aclose()


async def _poll_until(monitor: Monitor, client: httpx.AsyncClient, state: str, timeout_s: float):
    start = time.monotonic()
    seen = []
    while time.monotonic() - start < timeout_s:
        (r,) = await monitor.poll(client)
        seen.append((round(time.monotonic() - start, 2), r.health.state, r.acceptance_rate, r.running))
        if r.health.state == state:
            return r, time.monotonic() - start, seen
        await asyncio.sleep(INTERVAL_S)
    raise AssertionError(f"never reached {state} in {timeout_s} s: {seen}")


async def test_acceptance_collapse_moves_healthy_to_net_negative_within_one_window():
    server = _server()
    runner, port = await start_server(server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    load = Load(url, 4)
    mon = Monitor([url], WINDOW_S, resolve_thresholds())  # rule of thumb: healthy >= 0.65, net-negative < 0.5
    try:
        async with httpx.AsyncClient() as client:
            await _poll_until(mon, client, "healthy", 20)
            for _ in range(int(WINDOW_S / INTERVAL_S) + 1):  # fill a whole window at the high acceptance
                await mon.poll(client)
                await asyncio.sleep(INTERVAL_S)
            healthy, _, _ = await _poll_until(mon, client, "healthy", 1)
            assert healthy.window_s >= WINDOW_S - 1e-6
            assert healthy.acceptance_rate == pytest.approx(0.80, abs=0.04)
            assert healthy.mean_acceptance_length == pytest.approx(1 + sum(HIGH), abs=0.15)
            assert healthy.per_position == pytest.approx(HIGH, abs=0.05)
            assert healthy.ttft is not None and healthy.ttft.count > 0 and healthy.ttft.p99_s >= healthy.ttft.p50_s
            assert healthy.model_names == [MODEL] and healthy.engines == ["0"]
            resp = await client.post(f"{url}/admin/acceptance", json={"acceptance_rates": LOW, "heterogeneity": 0})
            assert resp.status_code == 200
            bad, elapsed, seen = await _poll_until(mon, client, "net_negative", 3 * WINDOW_S)
            assert elapsed <= WINDOW_S + INTERVAL_S, seen
            assert bad.acceptance_rate < 0.5
            assert bad.health.held_s < WINDOW_S
            (later,) = await mon.poll(client)
            await asyncio.sleep(WINDOW_S + 0.5)
            (settled,) = await mon.poll(client)
            assert settled.health.state == "net_negative"
            assert settled.health.since == pytest.approx(bad.health.since)  # the state's start does not move
            assert settled.acceptance_rate == pytest.approx(0.143, abs=0.04)  # the window no longer holds the past
    finally:
        await load.close()
        await runner.cleanup()


async def test_load_past_the_crossover_reports_over_crossover_at_unchanged_acceptance():
    server = _server(time_scale=0.5)
    runner, port = await start_server(server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    load = Load(url, 2, max_tokens=200)
    mon = Monitor([url], WINDOW_S, resolve_thresholds(crossover_batch=6))
    try:
        async with httpx.AsyncClient() as client:
            await _poll_until(mon, client, "healthy", 20)
            await asyncio.sleep(WINDOW_S)  # a full window at the low load
            low, _, _ = await _poll_until(mon, client, "healthy", 5)
            assert low.running <= 6 and low.window_s >= WINDOW_S - INTERVAL_S
            load.set(24)
            high, elapsed, seen = await _poll_until(mon, client, "over_crossover", 4 * WINDOW_S)
            assert high.running > 6, seen
            assert high.health.acceptance_state == "healthy"
            # acceptance unchanged (the profile's 0.80), yet the state is over the crossover
            assert high.acceptance_rate == pytest.approx(0.80, abs=0.08)
            assert low.acceptance_rate == pytest.approx(0.80, abs=0.08)
            assert any("crossover batch 6" in r for r in high.health.reasons)
    finally:
        await load.close()
        await runner.cleanup()


async def test_server_gone_and_back_with_reset_counters():
    server = _server()
    runner, port = await start_server(server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    mon = Monitor([url], WINDOW_S, resolve_thresholds(), timeout_s=2)
    load = Load(url, 2, max_tokens=60)
    try:
        async with httpx.AsyncClient() as client:
            await _poll_until(mon, client, "healthy", 20)
            await load.close()
            await runner.cleanup()
            (down,) = await mon.poll(client)
            assert not down.ok and down.health.state == "down" and "failed" in down.error
            runner, _ = await start_server(_server(), "127.0.0.1", port)  # a restart: counters from zero
            load = Load(url, 2, max_tokens=60)
            back, _, _ = await _poll_until(mon, client, "healthy", 20)
            assert back.ok and back.restarts_seen == 1 and back.counter_reset
            # not poisoned by the pre-restart counts (which were larger: a plain difference would be negative); a
            # short window right after the restart holds few drafts, hence the tolerance
            assert back.acceptance_rate == pytest.approx(0.80, abs=0.12) and back.drafted_tokens_per_s > 0
    finally:
        await load.close()
        await runner.cleanup()


async def test_cli_once_json_and_record(tmp_path):
    server = _server()
    runner, port = await start_server(server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    load = Load(url, 3)
    record = tmp_path / "watch.jsonl"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "specwise", "monitor", url, "http://127.0.0.1:9", "--once", "--json",
            "--window", "2", "--interval", "0.5", "--record", str(record), "--crossover-batch", "64",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await load.close()
        await runner.cleanup()
    assert proc.returncode == 1, err.decode()  # the second endpoint is down
    report = json.loads(out)
    live, dead = report["readings"]
    assert live["url"] == url and live["health"]["state"] == "healthy" and 0.7 < live["acceptance_rate"] < 0.9
    assert dead["health"]["state"] == "down" and report["worst_state"] == "down"
    assert report["thresholds"]["source"] == "rule_of_thumb"
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert len(lines) >= 8 and {x["url"] for x in lines} == {url, "http://127.0.0.1:9"}


@pytest.mark.parametrize("args, message", [
    (["localhost:8000"], "is not a URL"),
    (["http://127.0.0.1:9", "--window", "1", "--interval", "1"], "at least two scrapes"),
    (["http://127.0.0.1:9", "--json"], "--json needs --once"),
    (["http://127.0.0.1:9", "--break-even", "1.5"], "must lie in [0, 1]"),
    (["http://127.0.0.1:9", "--decision", "/nonexistent.json"], "not found"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    import subprocess

    done = subprocess.run([sys.executable, "-m", "specwise", "monitor", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr

"""How a cell ends once its requests are done: the /metrics gauge sampler stops, the final scrape answers or is
given up, and the cell is stored from its records whatever a /metrics call does.

Regression: on an H200 host a cell hung for good after its last record was written (the sampler kept polling
/metrics every second). With anyio < 4.16 (vLLM 0.26.0's device image has anyio 4.15.1), a native
``Task.cancel()`` that lands in the same event-loop iteration as one of anyio's own cancel-scope
cancellations (``anyio.connect_tcp`` cancels its happy-eyeballs task group as soon as the connect succeeds,
once per fresh httpx connection) is folded into anyio's and swallowed (anyio issue #1214, fixed in 4.16).
The cell stopped its sampler only by cancelling it, so a swallowed cancel left ``while True`` polling for
ever. The fake scrapes below swallow a cancel the same way, deterministically, on any anyio version.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from specwise.bench.findings import FindingContext, bench_findings
from specwise.bench.runner import BenchConfig, BenchRunner
from specwise.bench.store import RunStore
from specwise.metrics.prometheus import parse_metrics_text

pytestmark = pytest.mark.timeout(120)

GAUGES = parse_metrics_text(
    "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0.0\n"
    "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 0.0\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.0\n")
CELL_BOUND_S = 45.0  # a cell of 8 requests over ~0.2 s that is not over by then is hung (2-core CI: generous)


class FakeClient:
    """Answers every request at once with a 4-token completion stream; no network."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.cfg = ClientConfig(base_url="http://127.0.0.1:9", model="m", api="completions", timeout_s=timeout_s)
        self.auth_headers: dict[str, str] = {}
        self._parse = StreamingClient(self.cfg)

    async def send(self, req, *, role, qps=None, repeat=0, phase_t0=None, max_tokens_per_step=None):  # noqa: ANN001
        await asyncio.sleep(0.001)
        lines = [(0.001 * (i + 1), ("data: " + json.dumps(
            {"choices": [{"index": 0, "text": "x", "finish_reason": "length" if i == 3 else None}],
             "usage": {"prompt_tokens": 5, "completion_tokens": i + 1}}) + "\n\n").encode()) for i in range(4)]
        lines.append((0.005, b"data: [DONE]\n\n"))
        t_send = time.perf_counter()
        return self._parse.outcome(req, role, qps, repeat, phase_t0, max_tokens_per_step, t_send, lines, None, None)


def _runner(tmp_path) -> BenchRunner:
    cfg = BenchConfig(baseline_url="http://127.0.0.1:9", speculative_url="http://127.0.0.1:10", qps=[40.0],
                      num_requests=8, temperatures=[0.0], lossless="off", warmup_requests=0,
                      gauge_interval_s=0.01, workload="chat", client_workers=1)
    runner = BenchRunner(cfg, RunStore(tmp_path / "run"))
    runner.store.create({"bench": cfg.model_dump(mode="json")}, resume=False)
    return runner


async def _run_cell(runner: BenchRunner, client: FakeClient | None = None):
    """The cell's (CellRun, records), or a test failure if it has not ended within CELL_BOUND_S."""
    client = client or FakeClient()
    task = asyncio.ensure_future(runner.cell_runner.run(client, "baseline", 40.0, 0.0, 0, attempt=0, k=None))
    done, _ = await asyncio.wait({task}, timeout=CELL_BOUND_S)
    if not done:
        task.cancel()
        pytest.fail(f"the cell did not end within {CELL_BOUND_S:g} s after its requests were done")
    return task.result()


async def test_a_cancel_swallowed_inside_a_gauge_scrape_does_not_hang_the_cell(tmp_path):
    runner = _runner(tmp_path)
    calls = {"n": 0, "swallowed": 0}
    cancel_seen = asyncio.Event()

    async def scrape(client):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 1 or calls["swallowed"]:  # the scrape before the cell; every scrape after the swallow
            return GAUGES, None
        try:  # a sampler scrape in flight when the cell ends ...
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # ... whose cancel anyio < 4.16 folds into its own and swallows
            calls["swallowed"] += 1
            cancel_seen.set()
        return GAUGES, None  # the GET then completes normally, as it did on the H200 host

    runner.cell_runner.scrape = scrape
    cell, records = await _run_cell(runner)
    assert cancel_seen.is_set(), "the sampler was never cancelled mid-scrape: the test did not exercise the bug"
    assert cell.sent == 8 and len(records) == 8 and cell.summary.requests_ok == 8
    assert cell.metrics_error is None and cell.metrics is not None  # the final scrape still ran
    assert not cell.unsettled  # the sampler stopped on its stop signal: nothing was left behind
    assert [json.loads(x)["cell_id"] for x in (tmp_path / "run" / "cells.jsonl").read_text().splitlines()] == \
        ["baseline/r0/q40/t0"]
    await asyncio.sleep(0.1)
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # no sampler left polling


async def test_a_metrics_endpoint_that_never_answers_is_given_up_and_the_cell_is_still_stored(tmp_path):
    runner = _runner(tmp_path)
    runner.cell_runner.settle_timeout_s = 0.5
    runner.cell_runner.scrape_timeout_s = 0.5
    release = asyncio.Event()
    calls = {"n": 0}

    async def scrape(client):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 1:
            return GAUGES, None
        while not release.is_set():  # stuck, and deaf to cancellation, until the test lets it go
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return GAUGES, None

    runner.cell_runner.scrape = scrape
    try:
        cell, records = await _run_cell(runner)
    finally:
        release.set()
        await asyncio.sleep(0.05)
    assert cell.sent == 8 and len(records) == 8 and cell.summary.requests_ok == 8  # nothing measured is lost
    assert "within 0.5 s" in (cell.metrics_error or "") and cell.metrics is None
    assert any("gauge sampler" in u for u in cell.unsettled) and any("/metrics" in u for u in cell.unsettled)
    stored = [json.loads(x) for x in (tmp_path / "run" / "cells.jsonl").read_text().splitlines()]
    assert len(stored) == 1 and stored[0]["unsettled"] == cell.unsettled
    ctx = FindingContext(cfg=runner.cfg, pooled=[], k=None, servers={}, cells=[cell], lossless=None, complete=True,
                         synthetic_workload=True)
    warned = [f for f in bench_findings(ctx) if f.code == "cell_unsettled"]
    assert warned and all(f.severity == "warning" for f in warned)


async def test_a_stream_that_outlives_the_drain_limit_is_recorded_as_a_timeout(tmp_path):
    runner = _runner(tmp_path)
    runner.cell_runner.drain_grace_s = 0.3
    runner.cell_runner.scrape = lambda client: _gauges()  # noqa: ARG005
    reqs = runner.cell_runner.requests(40.0, 0.0, 0)
    stuck_id = reqs[2].request_id

    class Client(FakeClient):
        async def send(self, req, **kw):  # noqa: ANN001
            if req.request_id == stuck_id:
                await asyncio.sleep(3600)
            return await super().send(req, **kw)

    cell, records = await _run_cell(runner, Client(timeout_s=0.1))
    assert cell.sent == 8 and len(records) == 8
    assert cell.summary.requests_ok == 7 and cell.summary.requests_failed == 1
    late = next(r for r in records if r.request_id == stuck_id)
    assert late.error_kind == "timeout" and "drain limit" in late.error
    assert any("still streaming" in u for u in cell.unsettled)
    stored = [json.loads(x)["record"]["request_id"]
              for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert sorted(stored) == sorted(r.request_id for r in records)  # one stored record per request


async def _gauges():
    return GAUGES, None

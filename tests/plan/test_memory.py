"""plan_memory against hand computations (every number below is worked out in the comments)."""

from __future__ import annotations

import math

import pytest

from specwise.catalog.models import get_model
from specwise.errors import UserError
from specwise.plan.memory import (
    forward_activation_bytes,
    kv_bytes_per_token_per_gpu,
    plan_memory,
    sampler_activation_bytes,
)
from specwise.schemas.base import GIB
from specwise.schemas.plan import PlanRequest

H100_BYTES = 81559 * 2**20  # 79.6474609375 GiB as nvidia-smi reports


def _req(**kw):
    base = dict(
        target="meta-llama/Llama-3.1-8B-Instruct",
        gpu="H100-SXM",
        gpu_memory_utilization=0.9,
        max_model_len=8192,
        max_num_seqs=256,
        max_num_batched_tokens=2048,
        context=2048,
        vllm_version="0.19.0",  # before 0.20: no CUDA-graph estimate
    )
    base.update(kw)
    return PlanRequest(**base)


def test_llama8b_baseline_by_hand():
    plan = plan_memory(_req())
    b = plan.baseline
    # Llama-3.1-8B: per layer attn 4096*4096*2 + 2*4096*1024 = 41,943,040; MLP 3*4096*14336 = 176,160,768;
    # 2 norms 8192 -> 218,112,000 x 32 = 6,979,584,000; + embed and lm_head 2*128256*4096 + final norm 4096
    params = 6_979_584_000 + 2 * 128_256 * 4096 + 4096
    assert params == 8_030_261_248
    weights = 2 * params  # bf16
    requested = math.ceil(H100_BYTES * 0.9)
    # activation: max(forward 2048 tok * (2*4096 + 3*14336) * 2 B, sampler 256 * 128256 * 8 B)
    act = max(2048 * (2 * 4096 + 3 * 14336) * 2, 256 * 128_256 * 8)
    assert act == 262_668_288
    overhead = 0.5 * GIB
    available = requested - weights - act - overhead
    per_block = 16 * 131_072  # 16 tokens x (2 * 32 layers * 8 kv heads * 128 * 2 B)
    blocks = int(available // per_block)
    assert blocks == 28_662
    assert b.weights_gib_per_gpu == pytest.approx(weights / GIB)
    assert b.activation_gib == pytest.approx(act / GIB)
    assert b.cudagraph_gib == 0.0
    assert b.kv_cache_gib == pytest.approx(available / GIB)
    assert b.num_gpu_blocks == blocks
    assert b.kv_cache_tokens == blocks * 16 == 458_592
    assert b.max_concurrency == pytest.approx(458_592 / 8192)
    # sequences of 2048 tokens (no speculation: no lookahead) = 128 blocks each
    assert b.max_concurrency_at_context == blocks // 128
    assert b.effective_concurrency_at_context == 223  # min(max_num_seqs 256, 223)
    assert plan.speculative is None and plan.fits


def test_llama8b_with_1b_draft_by_hand():
    plan = plan_memory(_req(draft="meta-llama/Llama-3.2-1B-Instruct", num_speculative_tokens=4))
    s = plan.speculative
    assert s is not None and plan.settings.method == "draft_model"
    # Llama-3.2-1B (tied): per layer 2048*2048*2 + 2*2048*512 + 3*2048*8192 + 2*2048 = 60,821,504 x 16
    # + embedding 128256*2048 + final norm 2048 = 1,235,814,400 params -> bf16 bytes
    draft_weights = 2 * (60_821_504 * 16 + 128_256 * 2048 + 2048)
    weights = 2 * 8_030_261_248 + draft_weights
    requested = math.ceil(H100_BYTES * 0.9)
    act = 2 * 256 * 128_256 * 8  # sampler with the rejection sampler's extra rows dominates
    available = requested - weights - act - 0.5 * GIB
    per_token = 131_072 + 2 * 16 * 8 * 64 * 2  # target + draft (16 layers x 8 heads x 64 dim) = 163,840
    blocks = int(available // (16 * per_token))
    assert blocks == 21_886
    assert s.kv_bytes_per_token_draft == 32_768
    assert s.kv_cache_tokens == blocks * 16
    assert s.kv_tokens_lost == 458_592 - blocks * 16
    assert s.kv_tokens_lost_fraction == pytest.approx((458_592 - blocks * 16) / 458_592)
    assert plan.kv_tokens_lost_fraction == s.kv_tokens_lost_fraction
    # at context 2048 with k=4 lookahead: ceil(2052/16) = 129 blocks per sequence
    assert s.max_concurrency_at_context == blocks // 129


def test_ngram_costs_nothing():
    plan = plan_memory(_req(method="ngram"))
    assert plan.speculative is not None
    assert plan.speculative.draft_weights_gib_per_gpu == 0
    assert plan.speculative.kv_cache_tokens == plan.baseline.kv_cache_tokens
    assert plan.kv_tokens_lost == 0


def test_cudagraph_counted_from_020_and_default_utilisation():
    old = plan_memory(_req(vllm_version="0.19.1", gpu_memory_utilization=None))
    new = plan_memory(_req(vllm_version="0.20.0", gpu_memory_utilization=None))
    assert old.settings.gpu_memory_utilization == 0.90
    assert new.settings.gpu_memory_utilization == 0.92
    assert old.baseline.cudagraph_gib == 0
    assert new.baseline.cudagraph_gib == pytest.approx(0.25 + 0.01 * 32)


def test_kv_bytes_tp_sharding_and_mla():
    llama70, _ = get_model("meta-llama/Llama-3.1-70B")
    # 2 * 80 layers * 8 heads * 128 * 2 B = 327,680 B; TP2 keeps 4 heads per GPU
    assert kv_bytes_per_token_per_gpu(llama70, 1, 2.0, None) == 327_680
    assert kv_bytes_per_token_per_gpu(llama70, 2, 2.0, None) == 163_840
    # TP16 > 8 KV heads: each rank keeps one replicated head
    assert kv_bytes_per_token_per_gpu(llama70, 16, 2.0, None) == 2 * 80 * 1 * 128 * 2
    ds, _ = get_model("deepseek-ai/DeepSeek-V3")
    # MLA latent 512 + rope 64 = 576 values per layer, not split by TP: 576 * 61 * 1 B (fp8)
    assert kv_bytes_per_token_per_gpu(ds, 8, 1.0, None) == 576 * 61


def test_activation_helpers():
    llama8, _ = get_model("meta-llama/Llama-3.1-8B")
    assert forward_activation_bytes(llama8, 100, 1) == 100 * (2 * 4096 + 3 * 14336) * 2
    assert forward_activation_bytes(llama8, 100, 2) == 100 * (2 * 4096 + 3 * 14336 / 2) * 2
    assert sampler_activation_bytes(1000, 3) == 24_000


def test_70b_with_8b_draft_on_2xh100_does_not_fit_and_suggests():
    plan = plan_memory(
        PlanRequest(target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.1-8B-Instruct",
                    gpu="H100", gpus=2, max_model_len=8192)
    )
    assert plan.baseline.fits
    assert not plan.fits
    actions = " | ".join(s.action for s in plan.suggestions)
    assert "FP8" in actions and "GPUs" in actions
    assert all(s.fits and s.kv_cache_tokens >= 8192 for s in plan.suggestions)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(tp=3), "does not divide"),
        (dict(draft="meta-llama/Llama-3.2-1B", draft_tp=3, gpus=4, tp=4), "draft_tensor_parallel_size"),
        (dict(context=100_000), "exceeds"),
        (dict(max_model_len=200_000, context=1000), "max_position_embeddings"),
        (dict(gpus=3, tp=2), "multiple"),
        (dict(method="mtp"), "no MTP"),
        (dict(method="ngram", draft="meta-llama/Llama-3.2-1B"), "takes no --draft"),
    ],
)
def test_impossible_settings(kw, fragment):
    with pytest.raises(UserError, match=fragment):
        plan_memory(_req(**kw))


def test_sliding_window_kv_average():
    oss, _ = get_model("openai/gpt-oss-120b")
    # per layer 2 x 8 heads x 64 x 2 B = 2048 B; 18 full layers + 18 layers capped at 128 of 8192 tokens
    assert kv_bytes_per_token_per_gpu(oss, 1, 2.0, 8192) == pytest.approx(2048 * (18 + 18 * 128 / 8192))
    assert kv_bytes_per_token_per_gpu(oss, 1, 2.0, None) == 2048 * 36  # no hybrid allocator: worst case


def test_eagle3_head_is_a_small_draft_with_its_own_kv():
    plan = plan_memory(_req(method="eagle3"))
    s = plan.speculative
    assert plan.settings.draft_id == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
    assert s.kv_bytes_per_token_draft == 2 * 1 * 8 * 128 * 2  # one layer of the target's KV shape
    head, _ = get_model("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")
    assert s.draft_weights_gib_per_gpu == pytest.approx(head.weight_bytes("bf16") / GIB)
    assert 0 < plan.kv_tokens_lost_fraction < 0.05  # 4 KiB of 132 KiB per token, plus the head's weights


def test_mtp_adds_one_latent_layer():
    plan = plan_memory(PlanRequest(target="deepseek-ai/DeepSeek-V3", method="mtp", gpu="H200", gpus=8,
                                   max_model_len=32768, kv_cache_dtype="fp8"))
    s = plan.speculative
    assert s.kv_bytes_per_token_target == 576 * 61
    assert s.kv_bytes_per_token_draft == 576 * 1
    pc = get_model("deepseek-ai/DeepSeek-V3")[0].param_counts()
    assert s.draft_weights_gib_per_gpu == pytest.approx(pc.mtp * 1.0 / 8 / GIB)  # FP8 like the target, TP 8
    assert plan.fits


def test_draft_tp1_puts_the_whole_draft_on_one_gpu():
    full = plan_memory(_req(target="meta-llama/Llama-3.1-70B-Instruct", gpu="H200", gpus=2,
                            draft="meta-llama/Llama-3.1-8B-Instruct", draft_tp=1))
    split = plan_memory(_req(target="meta-llama/Llama-3.1-70B-Instruct", gpu="H200", gpus=2,
                             draft="meta-llama/Llama-3.1-8B-Instruct"))
    assert full.speculative.draft_weights_gib_per_gpu == pytest.approx(2 * split.speculative.draft_weights_gib_per_gpu)
    # the draft's KV heads are not split either: 8 heads on the one GPU vs 4 per GPU
    assert full.speculative.kv_bytes_per_token_draft == 2 * split.speculative.kv_bytes_per_token_draft
    assert full.speculative.kv_cache_tokens < split.speculative.kv_cache_tokens


def test_sliding_window_raises_concurrency_not_pool_tokens():
    plan = plan_memory(_req(target="openai/gpt-oss-20b"))
    b = plan.baseline
    # pool counts all 24 layers x 2048 B per token; a 8192-token request needs 12 full layers x 8192 tokens
    # plus 12 sliding layers x 128 tokens: 8192 x 2048 x (12 + 12 x 128 / 8192) bytes
    assert b.kv_bytes_per_token == 24 * 2048
    assert b.max_concurrency == pytest.approx(b.kv_cache_tokens * 24 * 2048 / (8192 * 2048 * (12 + 12 * 128 / 8192)))
    assert b.max_concurrency > 1.9 * b.kv_cache_tokens / 8192


def test_kv_auto_dtype_follows_the_served_dtype():
    """vLLM's KV 'auto' is the dtype the model runs in: `--dtype float32` on a bf16 checkpoint stores 4 B per value
    (recorded SmolLM2 server: 1 GiB held 23,296 tokens = 30 layers x 3 KV heads x 64 x 2 x 4 B per token)."""
    def per_token(**kw):
        return plan_memory(PlanRequest(target="HuggingFaceTB/SmolLM2-135M-Instruct", gpu_memory_gib=12.46,
                               kv_cache_memory_gib=1.0, max_model_len=512, max_num_seqs=8, **kw)).baseline

    assert per_token(target_quant="fp32").kv_bytes_per_token == 46_080
    assert per_token(target_quant="fp32").kv_cache_tokens == 23_296
    assert per_token().kv_bytes_per_token == per_token(target_quant="bf16").kv_bytes_per_token == 23_040
    assert per_token(target_quant="fp32", kv_cache_dtype="fp8").kv_bytes_per_token == 11_520

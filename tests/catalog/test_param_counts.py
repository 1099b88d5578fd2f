"""Computed parameter counts vs the publishers' official figures.

Tolerance: the computed count must ROUND to the published figure at the precision it was published
with (8.03B -> within 0.005B; 70.6B -> within 0.05B; 671B -> within 0.5B). Official figures are
rounded (Qwen truncates, tested separately), so this is the tightest honest test; for Llama-3.1-8B the formula is exact to the parameter.

Active-parameter conventions differ by publisher: Mistral counts the input embedding in Mixtral's
12.9B active (and Qwen in Qwen3-30B-A3B's 3.3B); OpenAI (gpt-oss) and DeepSeek (V3 37B activated) do not, since an embedding lookup does
no matmul. ParamCounts exposes both (`active`, `active_excluding_embedding`).
"""

from __future__ import annotations

import pytest

from specwise.catalog.models import get_model, list_models


def _rounds_to(value: float, official: float, decimals: int) -> bool:
    return round(value, decimals) == round(official, decimals)


def _truncates_to(value: float, official: float, decimals: int) -> bool:
    """Qwen's cards truncate (7,615,616,512 -> '7.61B'; the hub's safetensors counter shows 7.62B)."""
    scale = 10**decimals
    return int(value * scale) == round(official * scale)


@pytest.mark.parametrize(
    "name, official_b, decimals",
    [
        ("meta-llama/Llama-3.1-8B", 8.03, 2),
        ("meta-llama/Llama-3.1-70B", 70.6, 1),
        ("meta-llama/Llama-3.1-405B", 406, 0),  # Meta model card: 405B is the marketing name, 405.85B computed
        ("meta-llama/Llama-3.2-1B", 1.24, 2),
        ("meta-llama/Llama-3.2-3B", 3.21, 2),
        ("Qwen/Qwen2.5-72B", 72.7, 1),
        ("Qwen/Qwen3-235B-A22B", 235, 0),
        ("mistralai/Mixtral-8x7B-v0.1", 46.7, 1),
        ("deepseek-ai/DeepSeek-V3", 671, 0),
        ("openai/gpt-oss-120b", 116.83, 2),  # model card: 116.83B total
        ("openai/gpt-oss-20b", 20.91, 2),
        ("google/gemma-3-27b-it", 27.4, 1),  # includes the 0.42B SigLIP vision tower
        ("google/gemma-2-9b", 9.24, 2),
    ],
)
def test_total_params(name, official_b, decimals):
    spec, _ = get_model(name)
    assert _rounds_to(spec.param_counts().total / 1e9, official_b, decimals)


@pytest.mark.parametrize(
    "name, official_b, decimals, active",
    [
        ("Qwen/Qwen2.5-7B", 7.61, 2, False),
        ("Qwen/Qwen2.5-0.5B", 0.49, 2, False),
        ("Qwen/Qwen3-30B-A3B", 30.5, 1, False),
        ("Qwen/Qwen3-30B-A3B", 3.3, 1, True),  # Qwen counts the embedding in "activated": 3.35B
        ("Qwen/Qwen3-235B-A22B", 22, 0, True),
    ],
)
def test_qwen_truncated_counts(name, official_b, decimals, active):
    pc = get_model(name)[0].param_counts()
    assert _truncates_to((pc.active if active else pc.total) / 1e9, official_b, decimals)


def test_llama_8b_exact():
    # 32 x (attention 41,943,040 + MLP 176,160,768 + norms 8,192) + 2 x 128256 x 4096 + 4096
    assert get_model("meta-llama/Llama-3.1-8B")[0].param_counts().total == 8_030_261_248


@pytest.mark.parametrize(
    "name, official_b, decimals, excluding_embedding",
    [
        ("mistralai/Mixtral-8x7B-v0.1", 12.9, 1, False),
        ("deepseek-ai/DeepSeek-V3", 37, 0, True),
        ("openai/gpt-oss-120b", 5.13, 2, True),
        ("openai/gpt-oss-20b", 3.61, 2, True),
    ],
)
def test_active_params(name, official_b, decimals, excluding_embedding):
    pc = get_model(name)[0].param_counts()
    value = pc.active_excluding_embedding if excluding_embedding else pc.active
    assert _rounds_to(value / 1e9, official_b, decimals)


def test_deepseek_mtp_module():
    # DeepSeek-V3 README: 685B on the hub = 671B main + 14B MTP module (incl. its own embedding and
    # head copies, 2 x 129280 x 7168 = 1.85B). The MTP layer proper (eh_proj, one MoE decoder layer,
    # norms) is what vLLM loads beside the shared embedding: 14B - 1.85B ~ 12B.
    pc = get_model("deepseek-ai/DeepSeek-V3")[0].param_counts()
    with_copies = pc.mtp + 2 * 129_280 * 7168
    assert 13.0e9 < with_copies < 14.0e9


def test_eagle3_head_weights():
    # EAGLE-3 head for Llama-3.1-8B: q/k/v read [embed; hidden] = 8192 wide -> 8192 x (4096 + 2 x 1024)
    # + o 4096 x 4096 + MLP 3 x 4096 x 14336 + fc 3 x 4096 x 4096 + 3 norms + draft lm_head 32000 x 4096
    # + final norm; the embedding is the target's.
    expected = 8192 * 6144 + 4096 * 4096 + 3 * 4096 * 14336 + 3 * 4096 * 4096 + 3 * 4096 + 32000 * 4096 + 4096
    assert get_model("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")[0].param_counts().total == expected


def test_gpt_oss_mxfp4_only_experts():
    spec = get_model("openai/gpt-oss-120b")[0]
    pc = spec.param_counts()
    # experts: 36 layers x 128 x (2880 x 5760 + 5760 + 2880 x 2880 + 2880) in MXFP4 (0.53125 B/param),
    # everything else (attention, router, embeddings, lm_head, norms) in BF16
    experts = 36 * 128 * (2880 * 5760 + 5760 + 2880 * 2880 + 2880)
    expected = experts * 0.53125 + (pc.total - experts) * 2
    assert spec.weight_bytes() == pytest.approx(expected)


def test_catalog_size_and_coverage():
    ids = {m.id for m in list_models()}
    assert len(ids) >= 40
    for needed in [
        "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-405B", "meta-llama/Llama-3.3-70B-Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-72B", "Qwen/Qwen3-235B-A22B",
        "mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-Large-Instruct-2411", "mistralai/Mixtral-8x22B-v0.1",
        "google/gemma-2-27b", "google/gemma-3-27b-it", "microsoft/phi-4", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
        "deepseek-ai/DeepSeek-V3", "openai/gpt-oss-120b",
    ]:
        assert needed in ids
    kinds = {m.kind for m in list_models()}
    assert {"eagle", "eagle3"} <= kinds
    assert any(m.num_mtp_layers for m in list_models())
    for m in list_models():
        if m.kind != "model":
            assert m.speculator_for, m.id
            for target in m.speculator_for:
                assert get_model(target)[0].tokenizer_family == m.tokenizer_family


@pytest.mark.parametrize(
    "quant, bytes_per_param",
    [
        ("bf16", 2.0),
        ("fp8", 1.0),
        ("int8", 1.0),
        ("awq", 0.5 + 2.5 / 128),  # int4 + fp16 scale + 4-bit zero per group of 128
        ("gptq-int4", 0.5 + 2.5 / 128),
        ("gptq-int8", 1.0 + 3.0 / 128),
        ("bnb-4bit", 0.5 + (1.0 + 4.0 / 256) / 64),  # NF4, block 64, double-quantised absmax
    ],
)
def test_quantised_weight_bytes(quant, bytes_per_param):
    spec = get_model("meta-llama/Llama-3.1-70B")[0]
    # linear layers are quantised; embedding, lm_head and norms (80 x 2 + 1 of width 8192) stay 16-bit
    sixteen_bit = 2 * 128_256 * 8192 + (80 * 2 + 1) * 8192
    linear = 70_553_706_496 - sixteen_bit
    assert spec.weight_bytes(quant) == pytest.approx(linear * bytes_per_param + sixteen_bit * 2)

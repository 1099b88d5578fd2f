"""Pairing: tokenizer/vocab verdicts, size score, cost ratio formula, alternatives."""

from __future__ import annotations

import math

import pytest

from specwise.catalog.models import get_gpu, get_model
from specwise.perf.steptime import HEAD_FIXED_S, HEAD_S_PER_SPEC_TOKEN, NGRAM_FRACTION, draft_cost_ratio
from specwise.plan.pairing import cost_ratio, pair_report, size_ratio_score

H100 = get_gpu("H100")


def _m(name):
    return get_model(name)[0]


def test_padded_qwen_vocab_is_compatible():
    r = pair_report(_m("Qwen/Qwen2.5-72B"), "bf16", 2, H100, "draft_model", _m("Qwen/Qwen2.5-0.5B"), "bf16", 2)
    assert r.tokenizer_compatible
    assert (r.vocab_size_target, r.vocab_size_draft) == (152064, 151936)
    assert "padding" in r.vocab_note and "use_heterogeneous_vocab" in r.vocab_note


def test_different_tokenizers_incompatible():
    r = pair_report(_m("meta-llama/Llama-3.1-70B"), "bf16", 2, H100, "draft_model", _m("Qwen/Qwen2.5-0.5B"))
    assert not r.tokenizer_compatible and "different tokenizers" in r.vocab_note
    # Qwen3 and Qwen2.5 are different tokenizer families in the catalog (different special tokens)
    r = pair_report(_m("Qwen/Qwen3-32B"), "bf16", 2, H100, "draft_model", _m("Qwen/Qwen2.5-0.5B"))
    assert not r.tokenizer_compatible


def test_size_ratio_and_score():
    r = pair_report(_m("meta-llama/Llama-3.1-70B"), "bf16", 2, H100, "draft_model", _m("meta-llama/Llama-3.1-8B"))
    assert r.size_ratio == pytest.approx(70_553_706_496 / 8_030_261_248)
    assert r.size_ratio_score == 1.0 and r.same_family
    assert size_ratio_score(10) == 1.0
    assert size_ratio_score(4) == pytest.approx(1 - math.log(2) / math.log(4))  # 0.5: half-way to 4x outside
    assert size_ratio_score(48) == pytest.approx(0.0)
    assert size_ratio_score(2) == 0.0


def test_cost_ratio_is_the_step_time_models_by_hand():
    llama8, llama1 = _m("meta-llama/Llama-3.1-8B"), _m("meta-llama/Llama-3.2-1B")
    # batch-1 forward = launch (0.25 ms + 12 us/layer) + weight read at 85 % of 3.35 TB/s (perf/steptime.py);
    # the target streams everything but the input embedding, the 1B draft ties embedding and lm_head
    t_target = 0.25e-3 + 32 * 12e-6 + (8_030_261_248 - 525_336_576) * 2 / (3.35e12 * 0.85)
    t_draft = 0.25e-3 + 16 * 12e-6 + 1_235_814_400 * 2 / (3.35e12 * 0.85)
    r = pair_report(llama8, "bf16", 1, H100, "draft_model", llama1, "bf16", 1, k=4)
    assert r.cost_ratio == pytest.approx(t_draft / t_target, rel=1e-6)
    assert r.cost_ratio == pytest.approx(draft_cost_ratio(llama8, llama1, H100, 1, 1, "bf16", "bf16"))
    assert 0.2 < r.cost_ratio < 0.45  # a 1B draft is far from free at batch 1
    assert "step-time model" in r.cost_ratio_note and "TP1" in r.cost_ratio_note and "batch 1" in r.cost_ratio_note
    # EAGLE-3 head: the per-step fixed cost is spread over the k drafted tokens
    head = _m("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")
    c_head = cost_ratio(llama8, "bf16", 1, "eagle3", H100, head, k=4)
    assert c_head.value == pytest.approx((HEAD_FIXED_S + 4 * HEAD_S_PER_SPEC_TOKEN) / 4 / t_target, rel=1e-6)
    assert "k=4" in c_head.describe()
    assert cost_ratio(llama8, "bf16", 1, "ngram", H100).value == pytest.approx(NGRAM_FRACTION)


def test_alternatives():
    r = pair_report(_m("Qwen/Qwen2.5-72B"), "bf16", 2, H100, "draft_model", _m("Qwen/Qwen2.5-7B"))
    drafts = [a.draft for a in r.alternatives if a.method == "draft_model"]
    assert "Qwen/Qwen2.5-7B" not in drafts
    assert "Qwen/Qwen2.5-1.5B" in drafts and "Qwen/Qwen2.5-0.5B-Instruct" in drafts
    assert r.alternatives[-1].method == "ngram"
    r = pair_report(_m("meta-llama/Llama-3.1-8B"), "bf16", 1, H100, None)
    heads = {a.draft for a in r.alternatives if a.method in ("eagle", "eagle3")}
    assert {"yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "yuhuili/EAGLE-LLaMA3.1-Instruct-8B"} <= heads
    ds = pair_report(_m("deepseek-ai/DeepSeek-V3"), "fp8", 8, H100, None)
    assert any(a.method == "mtp" for a in ds.alternatives)


def test_draft_tp1_note():
    r = pair_report(_m("Qwen/Qwen3-235B-A22B"), "fp8", 4, get_gpu("H200"), "draft_model", _m("Qwen/Qwen3-0.6B"),
                    "bf16", 4)
    c_one = cost_ratio(_m("Qwen/Qwen3-235B-A22B"), "fp8", 4, "draft_model", get_gpu("H200"),
                       _m("Qwen/Qwen3-0.6B"), "bf16", 1).value
    assert c_one < r.cost_ratio
    assert any(f"c = {c_one:.3f}" in n for n in r.notes)
    assert "draft TP4" in r.cost_ratio_note

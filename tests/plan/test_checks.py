"""Named checks: thresholds and values by hand."""

from __future__ import annotations

import pytest

from specwise.plan.planner import make_plan
from specwise.schemas.base import GIB
from specwise.schemas.plan import PlanRequest


def _checks(**kw):
    result = make_plan(PlanRequest(**kw))
    return {c.name: c for c in result.checks}, result


def test_70b_on_2xh100():
    checks, _ = _checks(target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.1-8B-Instruct",
                        gpu="H100", gpus=2, max_model_len=8192)
    h100 = 81559 * 2**20
    t = checks["target_weights_share"]
    assert t.value == pytest.approx(70_553_706_496 * 2 / 2 / h100) and t.threshold == 0.70 and not t.passed
    d = checks["draft_weights_share"]
    assert d.value == pytest.approx(8_030_261_248 * 2 / 2 / h100) and d.threshold == 0.15 and d.passed
    assert not checks["kv_fits_max_model_len"].passed and not checks["fits"].passed
    assert "FP8" in checks["fits"].message  # suggestions with numbers
    assert checks["draft_size_ratio"].passed and checks["tokenizer_compatible"].passed


def test_draft_much_larger_than_needed():
    checks, result = _checks(target="Qwen/Qwen2.5-72B-Instruct", draft="Qwen/Qwen2.5-32B-Instruct", gpu="H200",
                             gpus=4, draft_tp=1, max_model_len=8192)
    r = checks["draft_size_ratio"]
    assert not r.passed and r.value == pytest.approx(72_706_203_648 / 32_763_876_352) and r.threshold == 8
    assert "Qwen/Qwen2.5-7B" in r.message  # the sweet-spot sibling
    d = checks["draft_weights_share"]
    # the whole 32B draft on one GPU (draft TP 1): 2 B x 32.76e9 params of 140.4 GiB
    assert not d.passed
    assert d.value == pytest.approx(result.memory.speculative.draft_weights_gib_per_gpu * GIB / (143771 * 2**20))


def test_incompatible_tokenizer_fails_check():
    checks, _ = _checks(target="meta-llama/Llama-3.1-8B-Instruct", draft="Qwen/Qwen2.5-0.5B-Instruct", gpu="H100",
                        max_model_len=8192)
    assert not checks["tokenizer_compatible"].passed


def test_draft_slower_than_target():
    # Mixtral-8x7B AWQ streams ~12.7B active params at ~0.52 B each; a bf16 Mistral-7B streams 7.1B x 2 B
    checks, result = _checks(target="mistralai/Mixtral-8x7B-Instruct-v0.1-AWQ",
                             draft="mistralai/Mistral-7B-Instruct-v0.3", gpu="L40S", max_model_len=8192)
    c = checks["draft_step_cost"]
    assert c.value == pytest.approx(result.pairing.cost_ratio) and c.value > 1 and not c.passed
    ok, _ = _checks(target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.2-1B-Instruct",
                    gpu="H200", gpus=2, max_model_len=8192)
    assert ok["draft_step_cost"].passed

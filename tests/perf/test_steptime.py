"""Step-time model against the reference's numbers (theory-and-calibration.md §2.3, §4, §8.1)."""

import numpy as np
import pytest

from specwise.catalog.models import get_gpu, get_model
from specwise.perf.steptime import (
    LLAMA31_8B_H100_FIT,
    DraftCost,
    StepTimeModel,
    closed_loop_speedup,
    draft_cost_ratio,
)
from specwise.schemas.model import Quantization


@pytest.fixture(scope="module")
def h100():
    return get_gpu("H100")


def test_additive_fit_matches_published_constants():
    # SpecDecode-Bench predictor.py: 5.886 ms + 21.0 us * N + 39.3 ns * KV
    t = LLAMA31_8B_H100_FIT.forward_time(100, 10_000)
    assert t == pytest.approx(5.8859e-3 + 100 * 21.0103e-6 + 10_000 * 39.2646e-9, rel=1e-6)
    # §4.3 sanity: bs 1 with scheduler overhead ~7.1 ms/token
    assert LLAMA31_8B_H100_FIT.step_time(1, 700) == pytest.approx(7.1e-3, rel=0.02)


def test_roofline_8b_h100_reproduces_first_principles(h100):
    m, _ = get_model("meta-llama/Llama-3.1-8B-Instruct")
    s = StepTimeModel.from_deployment(m, h100)
    # §4.1/§2.3: 15.0 GB streamed, the fit's 5.89 ms constant, 21.0 us per token, 39.1 ns per KV token
    assert s.t_fix_s + s.weight_read_s == pytest.approx(5.886e-3, rel=0.03)
    assert s.compute_s_per_token == pytest.approx(21.0e-6, rel=0.03)
    assert s.kv_read_s_per_token == pytest.approx(39.1e-9, rel=0.01)
    # §4.2: N* ~ 200-280 tokens on H100 with realistic efficiencies
    assert 200 <= s.compute_bound_tokens <= 280
    # hybrid: flat until N*, then linear in N
    assert s.forward_time(64, 0) == pytest.approx(s.forward_time(1, 0))
    assert s.forward_time(1024, 0) > 3 * s.forward_time(1, 0)


def test_roofline_70b_tp4_starting_values(h100):
    m, _ = get_model("meta-llama/Llama-3.1-70B-Instruct")
    s = StepTimeModel.from_deployment(m, h100, tp=4)
    # §8.1: weight floor 10.4 ms per GPU at full bandwidth; a ~ 49 us; b ~ 24.5 ns; ~2-3 ms comm+launch
    assert s.weight_read_s * 0.85 == pytest.approx(10.4e-3, rel=0.03)
    assert s.compute_s_per_token == pytest.approx(49e-6, rel=0.03)
    assert s.kv_read_s_per_token == pytest.approx(24.5e-9, rel=0.02)
    assert 2e-3 <= s.t_fix_s + s.comm_s <= 3e-3
    # H200 scales the bandwidth terms by 3.35/4.8 (§8.1)
    s200 = StepTimeModel.from_deployment(m, get_gpu("H200"), tp=4)
    assert s200.weight_read_s / s.weight_read_s == pytest.approx(3.35 / 4.8, rel=1e-6)


def test_quantisation_changes_the_compute_side(h100):
    m, _ = get_model("meta-llama/Llama-3.1-70B-Instruct")
    bf16 = StepTimeModel.from_deployment(m, h100, tp=4)
    fp8 = StepTimeModel.from_deployment(m, h100, tp=4, quant=Quantization.fp8)
    awq = StepTimeModel.from_deployment(m, h100, tp=4, quant="awq")
    # FP8 W8A8 halves bytes and doubles FLOP rate: N* unchanged (§4.2)
    assert fp8.compute_bound_tokens == pytest.approx(bf16.compute_bound_tokens, rel=0.05)
    # weight-only int4 keeps 16-bit math but reads ~1/4 of the bytes: N* drops ~4x
    assert awq.compute_bound_tokens < bf16.compute_bound_tokens / 3


def test_moe_weight_read_grows_with_batch(h100):
    m, _ = get_model("Qwen/Qwen3-30B-A3B")
    s = StepTimeModel.from_deployment(m, h100)
    assert s.weight_read_time(1) < s.weight_read_time(64) < s.weight_read_time(4096)
    assert s.weight_read_time(4096) == pytest.approx(s.weight_read_s + s.moe_expert_read_s, rel=1e-3)


def test_cudagraph_staircase():
    s = LLAMA31_8B_H100_FIT.model_copy(update={"cudagraph_sizes": [1, 2, 4, 8, 16], "eager_penalty_s": 1e-3})
    assert s.forward_time(5, 0) == pytest.approx(s.forward_time(8, 0))
    assert s.forward_time(17, 0) - s.forward_time(16, 0) > 1e-3


def test_draft_costs_by_method(h100):
    target, _ = get_model("meta-llama/Llama-3.1-70B-Instruct")
    draft, _ = get_model("meta-llama/Llama-3.2-1B-Instruct")
    # §2.3: draft forward ~12.5 % of a 70B TP4 forward; our roofline gives ~9 % for the 1B draft
    c = draft_cost_ratio(target, draft, h100, tp=4, draft_tp=1)
    assert 0.06 <= c <= 0.15
    dm = DraftCost.for_method("draft_model", gpu=h100, draft=draft)
    one = dm.time(1, 700, 1)
    assert dm.time(1, 700, 4) == pytest.approx(4 * one, rel=1e-6)
    assert dm.time(1, 700, 0) == 0.0
    # EAGLE head, 8B/H100 fit: 2.135 ms + 2.38 ns/KV + 0.84 us/spec token at k=3 (§2.3)
    head = DraftCost.for_method("eagle")
    assert head.time(1, 720, 3) == pytest.approx(2.13526e-3 + 720 * 2.378e-9 + 3 * 0.8414e-6, rel=1e-3)
    ng = DraftCost.for_method("ngram")
    assert ng.time(8, 1000, 3, target_forward_s=0.01) == pytest.approx(0.005875 * 0.01)
    ks = np.arange(0, 6)
    assert np.all(np.diff(head.time(8, 8000, ks)[1:]) > 0)


def test_closed_loop_speedup_reproduces_reference_prediction():
    # theory-and-calibration.md §2.3 [D]: ShareGPT, tau=2.25, C~720 -> 1.72 / 1.60 / 1.39 / 1.27
    head = DraftCost.for_method("eagle")
    got = closed_loop_speedup(LLAMA31_8B_H100_FIT, head, np.array([1, 16, 64, 128]), 3, 720, 2.25)
    assert got == pytest.approx([1.72, 1.60, 1.39, 1.27], abs=0.04)


def test_plan_and_simulate_report_the_same_c(h100):
    # one source: plan's pairing check and simulate's header price c with draft_cost_ratio
    from specwise.perf.steptime import CostRatio
    from specwise.plan.planner import make_plan
    from specwise.schemas.plan import PlanRequest
    from specwise.simulate.defaults import DEFAULT_DRAFT, DEFAULT_TARGET, build_deployment

    target, _ = get_model(DEFAULT_TARGET)
    draft, _ = get_model(DEFAULT_DRAFT)
    c = draft_cost_ratio(target, draft, h100, tp=4, draft_tp=1)
    _, info = build_deployment(DEFAULT_TARGET, "H100", 4, draft_name=DEFAULT_DRAFT, kv_capacity_tokens=100_000)
    plan = make_plan(PlanRequest(target=DEFAULT_TARGET, draft=DEFAULT_DRAFT, gpu="H100", gpus=4, draft_tp=1,
                                 max_model_len=8192))
    assert info["cost_ratio"] == pytest.approx(c) and plan.pairing.cost_ratio == pytest.approx(c)
    assert c == pytest.approx(0.089, abs=5e-4)
    assert info["cost_ratio_basis"] == "step-time model, H100-SXM, TP4, draft TP1, batch 1"
    assert CostRatio.compute(target, draft, h100, 4, 1).describe() == f"c = 0.089 ({info['cost_ratio_basis']})"

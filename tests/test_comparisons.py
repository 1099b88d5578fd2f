"""One comparison definition for simulated (summaries) and measured (records) runs."""

import pytest

from specwise.comparisons import ArmRun, compare_arms, ratio
from specwise.schemas import CellSummary, RequestRecord, Source


def _summary(role, e2e, tpot, tps, qps=2.0, **kw):
    return CellSummary(role=role, source=Source.simulated, qps=qps, temperature=0.0, e2e_p50_s=e2e, e2e_p99_s=2 * e2e,
                       tpot_p50_s=tpot, tpot_p99_s=2 * tpot, ttft_p50_s=0.1, output_tokens_per_s=tps, **kw)


def test_summaries_give_point_ratios_without_ci():
    comp = compare_arms([ArmRun(_summary("baseline", 2.0, 0.02, 100))], [ArmRun(_summary("speculative", 1.0, 0.01,
                                                                                          150))])
    assert comp.speedup_e2e_p50.value == pytest.approx(2.0) and comp.speedup_e2e_p50.ci_low is None
    assert comp.speedup_tpot_p99.value == pytest.approx(2.0) and comp.speedup_ttft_p50.value == pytest.approx(1.0)
    assert comp.throughput_ratio == pytest.approx(1.5) and comp.load_kind == "qps" and comp.load == 2.0
    assert ratio(1.0, 0) is None and ratio(None, 1.0) is None


def test_closed_loop_load_axis_comes_from_the_cells():
    base = _summary("baseline", 2.0, 0.02, 100, qps=None, load_kind="concurrency", load=64)
    spec = _summary("speculative", 1.0, 0.01, 150, qps=None, load_kind="concurrency", load=64)
    comp = compare_arms([ArmRun(base)], [ArmRun(spec)])
    assert comp.qps is None and comp.load_kind == "concurrency" and comp.load == 64


def _records(role, e2e_values, repeat=0):
    return [RequestRecord(request_id=f"{role}{repeat}-{i}", role=role, ttft_s=0.05, e2e_s=v, output_tokens=11,
                          repeat=repeat) for i, v in enumerate(e2e_values)]


def test_records_give_bootstrap_cis_and_per_repeat_medians():
    b0, b1 = _records("baseline", [1.0] * 20), _records("baseline", [1.2] * 20, repeat=1)
    s0, s1 = _records("speculative", [0.5] * 20), _records("speculative", [0.8] * 20, repeat=1)
    summ_b, summ_s = _summary("baseline", 1.0, 0.1, 10), _summary("speculative", 0.5, 0.05, 20)
    comp = compare_arms([ArmRun(summ_b, b0, 0), ArmRun(summ_b, b1, 1)], [ArmRun(summ_s, s0, 0), ArmRun(summ_s, s1, 1)])
    assert comp.per_repeat["e2e_p50"] == pytest.approx([2.0, 1.5])
    assert comp.speedup_e2e_p50.value == pytest.approx(1.75)  # median of the repeats
    assert comp.speedup_e2e_p50.ci_low is not None and comp.repeats == 2
    assert comp.throughput_ratio == pytest.approx(2.0)


def test_a_comparison_needs_both_arms():
    with pytest.raises(ValueError):
        compare_arms([], [ArmRun(_summary("speculative", 1, 1, 1))])


def test_no_throughput_on_either_side_is_no_ratio():
    spec = _summary("speculative", 1.0, 0.01, None)
    assert compare_arms([ArmRun(_summary("baseline", 2.0, 0.02, 100))], [ArmRun(spec)]).throughput_ratio is None
    assert compare_arms([ArmRun(_summary("baseline", 2.0, 0.02, 0.0))],
                        [ArmRun(_summary("speculative", 1, 1, 5))]).throughput_ratio is None

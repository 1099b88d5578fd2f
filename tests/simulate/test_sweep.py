"""Guard recommendation and crossover detection."""

import pytest

from specwise.simulate.defaults import default_deployment
from specwise.schemas import CellSummary, Source
from specwise.simulate.sweep import crossover_batch_size, point_comparison, recommend_guard
from specwise.simulate.workload import RequestClass


def test_guard_schedule_covers_every_batch_and_turns_speculation_down():
    spec, k = default_deployment()
    g = recommend_guard(spec, k, [RequestClass()], mean_context=719.0, method="draft_model")
    ranges = g.num_speculative_tokens_per_batch_size
    assert ranges[0][0] == 1 and ranges[-1][1] == spec.engine.max_num_seqs
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))  # contiguous, no gaps
    ks = [r[2] for r in ranges]
    assert ks[0] == k and ks == sorted(ks, reverse=True)  # k falls with batch at short context (§1.4)
    assert ks[-1] == 0 and g.disable_by_batch_size == ranges[-1][0]
    assert g.analytic_crossover_batch_size is not None and g.analytic_crossover_batch_size > ranges[0][1]
    assert g.speculative_config["num_speculative_tokens_per_batch_size"] == ranges


def test_crossover_is_interpolated_between_points():
    def cells(qps, batch, speedup):
        base = CellSummary(role="baseline", source=Source.simulated, qps=qps, e2e_p50_s=speedup, tpot_p50_s=1,
                           output_tokens_per_s=1, mean_batch_size=0)
        spec = base.model_copy(update={"role": "speculative", "e2e_p50_s": 1.0, "mean_batch_size": batch})
        return base, spec

    pts = [cells(q, b, s) for q, b, s in [(1, 10, 1.8), (4, 40, 1.2), (8, 80, 0.8)]]
    comps = [point_comparison(b, s) for b, s in pts]
    spec = [s for _, s in pts]
    assert [c.speedup_e2e_p50.value for c in comps] == pytest.approx([1.8, 1.2, 0.8])
    assert crossover_batch_size(comps, spec) == pytest.approx(60.0)
    assert crossover_batch_size(comps[:2], spec[:2]) is None
    from specwise.crossover import crossovers_from_comparisons

    (cross,) = crossovers_from_comparisons(comps, Source.simulated)
    assert cross.value == pytest.approx(6.0) and cross.load == "qps"
    assert crossovers_from_comparisons(comps[:2], Source.simulated)[0].position == "above_range"

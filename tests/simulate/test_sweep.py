"""Guard recommendation and crossover detection."""

import pytest

from specwise.simulate.defaults import default_deployment
from specwise.simulate.sweep import PointMetrics, SweepPoint, _interp_crossover, recommend_guard
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
    def pm(batch):
        return PointMetrics(ttft_p50_s=1, ttft_p99_s=1, tpot_p50_s=1, tpot_p99_s=1, e2e_p50_s=1, e2e_p99_s=1,
                            output_tokens_per_s=1, mean_batch_size=batch)

    pts = [SweepPoint(qps=q, baseline=pm(0), speculative=pm(b), speedup_e2e_p50=s, speedup_tpot_p50=s)
           for q, b, s in [(1, 10, 1.8), (4, 40, 1.2), (8, 80, 0.8)]]
    qps, batch = _interp_crossover(pts)
    assert qps == pytest.approx(6.0) and batch == pytest.approx(60.0)
    assert _interp_crossover(pts[:2]) == (None, None)

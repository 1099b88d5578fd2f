"""The shared crossover definition: interpolation, CI bracket, out-of-range cases, and simulate == bench on it."""

import pytest

from specwise.crossover import (
    crossover_sentence,
    crossovers_from_comparisons,
    describe_crossover,
    downward_crossings,
    first_crossing,
)
from specwise.schemas.base import Source
from specwise.schemas.results import Comparison, SpeedupCI


def _comp(qps, value, low=None, high=None, temperature=0.0, baseline_role="baseline"):
    sp = SpeedupCI(value=value, ci_low=low, ci_high=high)
    return Comparison(qps=qps, temperature=temperature, baseline_role=baseline_role, speedup_tpot_p50=sp,
                      speedup_tpot_p99=sp, speedup_e2e_p50=sp, speedup_e2e_p99=sp)


def test_first_crossing_interpolates_linearly_and_skips_missing_points():
    c = first_crossing([1, 4, 8], [1.8, 1.2, 0.8])
    assert c is not None and c.load == pytest.approx(6.0) and (c.lower, c.upper) == (1, 2)
    assert c.fraction == pytest.approx(0.5)
    c = first_crossing([1, 4, 8], [1.5, None, 0.5])  # paired across the point without a speedup
    assert c is not None and c.load == pytest.approx(4.5) and (c.lower, c.upper) == (0, 2)
    assert first_crossing([1, 4], [1.8, 1.2]) is None
    assert first_crossing([1, 4], [0.8, 1.2]) is None  # an upward crossing is not a crossover
    assert len(downward_crossings([1, 2, 3, 4], [1.2, 0.9, 1.1, 0.8])) == 2


def test_measured_crossover_is_bracketed_by_loads_whose_ci_excludes_one():
    comps = [_comp(1, 1.6, 1.4, 1.8), _comp(2, 1.3, 1.1, 1.5), _comp(4, 1.05, 0.9, 1.2), _comp(8, 0.9, 0.8, 1.02),
             _comp(16, 0.6, 0.5, 0.7)]
    (c,) = crossovers_from_comparisons(list(reversed(comps)), Source.measured)  # order of input irrelevant
    assert c.position == "within" and c.source == "measured" and c.temperature == 0.0
    assert c.value == pytest.approx(4 + 4 * 0.05 / 0.15)
    assert (c.bracket_low, c.bracket_high) == (2.0, 16.0)  # 4 and 8 straddle 1 with their CIs
    assert c.loads == [1.0, 2.0, 4.0, 8.0, 16.0] and c.speedups[0] == 1.6
    text = crossover_sentence(c)
    assert text.startswith("Measured crossover (T=0") and "~5.33 req/s" in text and "between 4 and 8 req/s" in text
    assert "between 2 and 16 req/s with 95% confidence" in text


def test_crossovers_per_temperature_and_baseline_and_out_of_range_cases():
    comps = [_comp(1, 1.3, temperature=0.0), _comp(4, 1.1, temperature=0.0),
             _comp(1, 0.9, temperature=0.7), _comp(4, 0.7, temperature=0.7),
             _comp(1, 1.4, baseline_role="baseline_like_for_like"),
             _comp(4, 0.6, baseline_role="baseline_like_for_like"),
             _comp(None, 0.5)]  # closed-loop comparison: no QPS, not part of a QPS crossover
    out = crossovers_from_comparisons(comps, Source.measured)
    by = {(c.temperature, c.baseline_role): c for c in out}
    assert by[(0.0, "baseline")].position == "above_range" and by[(0.0, "baseline")].value is None
    assert by[(0.7, "baseline")].position == "below_range"
    like = by[(0.0, "baseline_like_for_like")]
    assert like.position == "within" and like.bracket_low is None and like.bracket_high is None
    assert "no load's speedup CI" in crossover_sentence(like)
    assert "above the range" in crossover_sentence(by[(0.0, "baseline")])
    assert describe_crossover([], [], source=Source.measured).position == "no_data"


def test_simulated_and_measured_crossover_share_one_definition():
    from specwise.schemas import CellSummary
    from specwise.simulate.sweep import crossover_batch_size, point_comparison

    def cells(qps, batch, speedup):
        base = CellSummary(role="baseline", source=Source.simulated, qps=qps, temperature=0.0, e2e_p50_s=speedup,
                           tpot_p50_s=1, mean_batch_size=0)
        return base, base.model_copy(update={"role": "speculative", "e2e_p50_s": 1.0, "mean_batch_size": batch})

    pts = [cells(q, b, s) for q, b, s in [(1, 10, 1.8), (4, 40, 1.2), (8, 80, 0.8)]]
    comps = [point_comparison(b, sp) for b, sp in pts]
    (sim,) = crossovers_from_comparisons(comps, Source.simulated)  # what simulate.sweep.run_sweep does
    sim.batch_size = crossover_batch_size(comps, [sp for _, sp in pts])
    meas = crossovers_from_comparisons([_comp(1, 1.8), _comp(4, 1.2), _comp(8, 0.8)], Source.measured)[0]
    assert sim.source == "simulated" and sim.batch_size == 60.0
    assert sim.value == meas.value == pytest.approx(6.0) and sim.loads == meas.loads
    assert crossover_sentence(sim).startswith("Simulated crossover (T=0")

import numpy as np
import pytest

from specwise.stats import (
    BLOCK_S,
    MIN_BLOCKS,
    _draws,
    _weighted_percentiles,
    paired_block_ratio_ci,
    paired_time_blocks,
    percentile,
)


def test_percentile_ignores_nan_and_handles_empty():
    assert percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert percentile([], 50) is None


def _arm(rng, median, repeats=1, n=400, span_s=20.0, slow_phases=None, trend=0.0):
    """Repeats of (send time, latency) on one schedule per repeat (seeded by the repeat, as bench's arms share it);
    slow_phases: per repeat, a factor applied in alternate 5-s phases; trend: latency growth per second."""
    out = []
    for r in range(repeats):
        t = np.sort(np.random.default_rng(100 + r).uniform(0, span_s, n))
        v = rng.lognormal(np.log(median), 0.2, n) * (1.0 + trend * t)
        if slow_phases and slow_phases[r] != 1.0:
            v = v * np.where((t // 5) % 2 == 0, 1.0, slow_phases[r])
        out.append(list(zip(t, v)))
    return out


def _plain_ci(base, spec, q=50, n=2000, seed=0):
    """The request bootstrap the comparisons used before: every request independent, arms independent."""
    rng = np.random.default_rng(seed)
    b = np.asarray([v for rep in base for _, v in rep])
    s = np.asarray([v for rep in spec for _, v in rep])
    ratios = (np.percentile(b[rng.integers(0, b.size, (n, b.size))], q, axis=1)
              / np.percentile(s[rng.integers(0, s.size, (n, s.size))], q, axis=1))
    return np.percentile(ratios, [2.5, 97.5])


def _ci(base, spec, **kw):
    return paired_block_ratio_ci(*paired_time_blocks(base, spec), **kw)


def test_paired_block_ci_brackets_the_true_ratio_of_independent_requests():
    rng = np.random.default_rng(1)
    point, low, high = _ci(_arm(rng, 2.0), _arm(rng, 1.0))
    assert point == pytest.approx(2.0, rel=0.1)
    assert low < 2.0 < high
    assert high - low < 0.4


def test_weighted_percentile_equals_the_percentile_of_the_drawn_blocks():
    rng = np.random.default_rng(0)
    counts = [3, 2, 4]
    blocks = [[rng.normal(size=rng.integers(1, 6)) for _ in range(c)] for c in counts]
    drawn = next(_draws(np.asarray(counts), 9, np.random.default_rng(5)))
    got = _weighted_percentiles(blocks, drawn, 37)
    flat = [b for rep in blocks for b in rep]
    for i in range(9):
        expanded = np.concatenate([np.repeat(b, k) for b, k in zip(flat, drawn[i])])
        assert got[i] == pytest.approx(np.percentile(expanded, 37))
    # stage 1 draws whole repeats, stage 2 as many blocks as the drawn repeat has
    assert (drawn.sum(axis=1) >= min(counts) * len(counts)).all()


def test_a_cell_that_switches_speed_gets_an_interval_that_covers_its_next_repeat():
    rng = np.random.default_rng(3)
    # speculative latency 1.6x in alternate 5-s phases of the first repeat, steady in the second
    base = _arm(rng, 2.0, repeats=2)
    spec = _arm(rng, 1.0, repeats=2, slow_phases=[1.6, 1.0])
    one = _ci(base[:1], spec[:1])
    second_point = np.median([v for _, v in base[1]]) / np.median([v for _, v in spec[1]])
    plain_low, plain_high = _plain_ci(base[:1], spec[:1])
    assert (one[2] - one[1]) > 1.5 * (plain_high - plain_low)  # blocks see the phases; requests do not
    assert not plain_low <= second_point <= plain_high
    # with both repeats the interval spans the two repeats' speedups
    both = _ci(base, spec)
    first_point = np.median([v for _, v in base[0]]) / np.median([v for _, v in spec[0]])
    assert both[1] <= min(first_point, second_point) and max(first_point, second_point) <= both[2]


def test_a_queue_building_in_both_arms_is_shared_not_counted_as_noise():
    # latency grows 20 %/s through the cell in both arms (the same schedule fills both queues): pairing the
    # blocks keeps the interval near the request bootstrap's; drawing them apart would spread it by the trend
    rng = np.random.default_rng(4)
    base, spec = _arm(rng, 2.0, n=200, span_s=6.0, trend=0.2), _arm(rng, 1.0, n=200, span_s=6.0, trend=0.2)
    _, low, high = _ci(base, spec)
    plain_low, plain_high = _plain_ci(base, spec)
    assert high - low < 1.5 * (plain_high - plain_low)
    assert low > 1.7 and high < 2.3


def test_time_blocks_are_at_most_block_s_at_least_min_blocks_and_the_same_for_both_arms():
    long_b, long_t = paired_time_blocks([[(t, 1.0) for t in np.arange(0, 60, 0.1)]],
                                        [[(t, 2.0) for t in np.arange(0.05, 59, 0.1)]])
    assert len(long_b[0]) == len(long_t[0]) == int(np.ceil(60 / BLOCK_S))
    short_b, _ = paired_time_blocks([[(t, 1.0) for t in np.arange(0, 3, 0.01)]], [[(0.0, 1.0)]])
    assert len(short_b[0]) >= MIN_BLOCKS
    assert paired_time_blocks([[(0.0, float("nan")), (None, 1.0)]], [[(0.0, 1.0)]]) == ([], [])


def test_a_burst_sent_at_once_is_cut_by_send_order_not_left_as_one_block():
    burst_b, burst_t = paired_time_blocks([[(0.0, float(v)) for v in range(40)]], [[(0.0, 1.0)] * 40])
    assert len(burst_b[0]) == len(burst_t[0]) == MIN_BLOCKS and sum(b.size for b in burst_b[0]) == 40
    rng = np.random.default_rng(2)
    base = [[(0.0, v) for v in rng.lognormal(np.log(2.0), 0.2, 200)]]
    spec = [[(0.0, v) for v in rng.lognormal(np.log(1.0), 0.2, 200)]]
    _, low, high = _ci(base, spec)
    assert high - low > 0.05  # a real interval, not one block resampled into itself

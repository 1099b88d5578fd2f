import numpy as np
import pytest

from specwise.stats import BLOCK_S, MIN_BLOCKS, _resampled_percentiles, clustered_ratio_ci, percentile, time_blocks


def test_percentile_ignores_nan_and_handles_empty():
    assert percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert percentile([], 50) is None


def _arm(rng, median, repeats=1, n=400, span_s=20.0, slow_phases=None):
    """Repeats of (send time, latency); slow_phases: per repeat, a factor applied in alternate 5-s phases."""
    out = []
    for r in range(repeats):
        t = np.sort(rng.uniform(0, span_s, n))
        v = rng.lognormal(np.log(median), 0.2, n)
        if slow_phases and slow_phases[r] != 1.0:
            v = v * np.where((t // 5) % 2 == 0, 1.0, slow_phases[r])
        out.append(list(zip(t, v)))
    return out


def _plain_ci(base, spec, q=50, n=2000, seed=0):
    """The request bootstrap the comparisons used before: every request independent."""
    rng = np.random.default_rng(seed)
    b = np.asarray([v for rep in base for _, v in rep])
    s = np.asarray([v for rep in spec for _, v in rep])
    ratios = (np.percentile(b[rng.integers(0, b.size, (n, b.size))], q, axis=1)
              / np.percentile(s[rng.integers(0, s.size, (n, s.size))], q, axis=1))
    return np.percentile(ratios, [2.5, 97.5])


def test_clustered_ci_brackets_the_true_ratio_of_independent_requests():
    rng = np.random.default_rng(1)
    point, low, high = clustered_ratio_ci(time_blocks(_arm(rng, 2.0)), time_blocks(_arm(rng, 1.0)))
    assert point == pytest.approx(2.0, rel=0.1)
    assert low < 2.0 < high
    assert high - low < 0.4


def test_resampled_percentile_equals_the_percentile_of_the_drawn_blocks():
    rng = np.random.default_rng(0)
    repeats = [[rng.normal(size=rng.integers(1, 6)) for _ in range(rng.integers(2, 5))] for _ in range(3)]
    got = _resampled_percentiles(repeats, 37, 9, np.random.default_rng(5))
    # redraw the same resamples by hand and expand them
    draw = np.random.default_rng(5)
    counts = np.asarray([len(r) for r in repeats])
    pick = draw.integers(0, len(repeats), size=(9, len(repeats)))
    u = draw.random((9, len(repeats), counts.max()))
    for i in range(9):
        values = [repeats[pick[i, j]][int(u[i, j, slot] * counts[pick[i, j]])]
                  for j in range(len(repeats)) for slot in range(counts[pick[i, j]])]
        assert got[i] == pytest.approx(np.percentile(np.concatenate(values), 37))


def test_a_cell_that_switches_speed_gets_an_interval_that_covers_its_next_repeat():
    rng = np.random.default_rng(3)
    # speculative latency 1.6x in alternate 5-s phases of the first repeat, steady in the second
    base = _arm(rng, 2.0, repeats=2)
    spec = _arm(rng, 1.0, repeats=2, slow_phases=[1.6, 1.0])
    one = clustered_ratio_ci(time_blocks(base[:1]), time_blocks(spec[:1]))
    second_point = np.median([v for _, v in base[1]]) / np.median([v for _, v in spec[1]])
    plain_low, plain_high = _plain_ci(base[:1], spec[:1])
    assert (one[2] - one[1]) > 1.5 * (plain_high - plain_low)  # blocks see the phases; requests do not
    assert not plain_low <= second_point <= plain_high
    # with both repeats the interval spans the two repeats' speedups
    both = clustered_ratio_ci(time_blocks(base), time_blocks(spec))
    first_point = np.median([v for _, v in base[0]]) / np.median([v for _, v in spec[0]])
    assert both[1] <= min(first_point, second_point) and max(first_point, second_point) <= both[2]


def test_time_blocks_are_at_most_block_s_and_at_least_min_blocks_per_repeat():
    long = time_blocks([[(t, 1.0) for t in np.arange(0, 60, 0.1)]])[0]
    assert len(long) == int(np.ceil(60 / BLOCK_S))
    short = time_blocks([[(t, 1.0) for t in np.arange(0, 3, 0.01)]])[0]
    assert len(short) >= MIN_BLOCKS
    assert time_blocks([[(0.0, float("nan")), (None, 1.0)]]) == []


def test_a_burst_sent_at_once_is_cut_by_send_order_not_left_as_one_block():
    burst = time_blocks([[(0.0, float(v)) for v in range(40)]])[0]
    assert len(burst) == MIN_BLOCKS and sum(b.size for b in burst) == 40
    rng = np.random.default_rng(2)
    base = [[(0.0, v) for v in rng.lognormal(np.log(2.0), 0.2, 200)]]
    spec = [[(0.0, v) for v in rng.lognormal(np.log(1.0), 0.2, 200)]]
    _, low, high = clustered_ratio_ci(time_blocks(base), time_blocks(spec))
    assert high - low > 0.05  # a real interval, not one block resampled into itself

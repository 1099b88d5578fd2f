import numpy as np
import pytest

from specwise.stats import bootstrap_ratio_ci, percentile


def test_percentile_ignores_nan_and_handles_empty():
    assert percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert percentile([], 50) is None


def test_bootstrap_ratio_ci_brackets_the_true_ratio():
    rng = np.random.default_rng(1)
    base = rng.lognormal(mean=np.log(2.0), sigma=0.2, size=400)
    spec = rng.lognormal(mean=np.log(1.0), sigma=0.2, size=400)
    point, low, high = bootstrap_ratio_ci(base, spec)
    assert point == pytest.approx(2.0, rel=0.1)
    assert low < 2.0 < high
    assert high - low < 0.4

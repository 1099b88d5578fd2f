"""One arrival-schedule definition below both stages: same seed and rate, same send times in simulate and bench."""

import numpy as np
import pytest

from specwise.arrivals import open_loop_offsets, requests_for_duration, sweep_rates
from specwise.bench.arrivals import ArrivalSpec as BenchArrival
from specwise.bench.arrivals import schedule
from specwise.errors import UserError
from specwise.simulate.workload import ArrivalSpec as SimArrival
from specwise.simulate.workload import WorkloadSpec, generate_requests


@pytest.mark.parametrize("kind,burstiness", [("poisson", 1.0), ("gamma", 0.3), ("gamma", 4.0), ("constant", 1.0)])
@pytest.mark.parametrize("rate,seed", [(2.0, 0), (7.5, 123), (40.0, 99)])
def test_simulate_and_bench_send_the_same_schedule(kind, burstiness, rate, seed):
    n = 60
    bench = schedule(BenchArrival(kind=kind, rate=rate, burstiness=burstiness), n, seed)
    sim = generate_requests(WorkloadSpec(arrival=SimArrival(kind=kind, qps=rate, burstiness=burstiness),
                                         num_requests=n), seed=seed).arrival_s
    assert sim.tolist() == pytest.approx(bench, abs=1e-12)
    assert bench[0] == 0.0 and bench[-1] == pytest.approx((n - 1) / rate)


def test_duration_gives_the_same_request_count_in_both_stages():
    assert requests_for_duration(3.0, 10) == 30
    sim = generate_requests(WorkloadSpec(arrival=SimArrival(kind="poisson", qps=3.0), duration_s=10), seed=4)
    assert sim.arrival_s.size == 30
    assert sim.arrival_s.tolist() == pytest.approx(schedule(BenchArrival(kind="poisson", rate=3.0), 30, 4))


def test_rescaling_keeps_the_shape_and_the_generator_state():
    a = np.random.default_rng(5)
    offsets = open_loop_offsets("gamma", 4.0, 500, a, burstiness=0.25)
    b = np.random.default_rng(5)
    raw = b.gamma(0.25, 1 / (4.0 * 0.25), size=500)
    assert a.random() == b.random()  # exactly n draws taken: later draws (simulate's lengths) unchanged
    gaps = np.diff(offsets)
    cv = lambda g: g.std() / g.mean()  # noqa: E731
    assert cv(gaps) == pytest.approx(cv(raw[:-1]), rel=1e-9)  # scale changed, shape kept
    assert gaps.mean() == pytest.approx(1 / 4.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf"), 1e300])
def test_rates_outside_the_bounds_are_user_errors(rate):
    with pytest.raises(UserError, match="finite number > 0, from"):
        open_loop_offsets("poisson", rate, 10, 0)
    with pytest.raises(UserError):
        requests_for_duration(rate, 10)


def test_duration_and_sweep_bounds():
    for bad in (float("inf"), float("nan"), 0.0):
        with pytest.raises(UserError, match="duration"):
            requests_for_duration(1.0, bad)
    with pytest.raises(UserError):
        list(sweep_rates(1.0, 1.0, 8.0))
    assert list(sweep_rates(1, 2, 8)) == [1, 2, 4, 8]

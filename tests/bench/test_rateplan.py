"""The rate plan decides the next load; a sweep stops at the first saturated load."""

from specwise.bench.rateplan import LoadOutcome, RatePlan


def _walk(plan, saturated_at=()):
    loads, load = [], plan.next()
    while load is not None:
        loads.append(load.qps)
        load = plan.next(LoadOutcome(load.qps, load.qps in saturated_at))
    return loads


def test_fixed_rates_run_in_order_whatever_saturates():
    assert _walk(RatePlan.fixed([1.0, 4.0, 2.0]), saturated_at={1.0}) == [1.0, 4.0, 2.0]


def test_sweep_doubles_until_saturation_or_the_maximum():
    assert _walk(RatePlan.sweep(1, 2, 64), saturated_at={8}) == [1, 2, 4, 8]
    plan = RatePlan.sweep(1, 2, 16)
    assert _walk(plan) == [1, 2, 4, 8, 16] and plan.run == [1, 2, 4, 8, 16] and plan.peak == 16


def test_closed_loop_is_one_load():
    assert _walk(RatePlan.closed_loop()) == [None]


def test_resume_knows_when_a_sweep_is_finished():
    plan = RatePlan.sweep(1, 2, 16)
    assert not plan.finished_after([])
    assert not plan.finished_after([LoadOutcome(1, False), LoadOutcome(2, False)])
    assert plan.finished_after([LoadOutcome(1, False), LoadOutcome(2, True)])
    assert plan.finished_after([LoadOutcome(q, False) for q in (1, 2, 4, 8, 16)])
    assert not plan.finished_after([LoadOutcome(3, True)])  # not this plan's loads

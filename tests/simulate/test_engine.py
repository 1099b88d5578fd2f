"""The discrete-event engine: timing, acceptance sampling, scheduling limits, policies, records."""

import numpy as np
import pytest

from specwise.errors import UserError
from specwise.metrics.definitions import summarize_cell
from specwise.perf.steptime import LLAMA31_8B_H100_FIT, DraftCost
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile, unconditional_from_conditional
from specwise.schemas.base import Source
from specwise.simulate.engine import EngineConfig
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.run import Deployment, simulate_cell
from specwise.simulate.workload import ArrivalSpec, LengthDist, RequestClass, WorkloadSpec, generate_requests

COND = [0.6, 0.6, 0.65]


def deployment(cond=COND, match=1.0, het=0.0, kv=1_000_000, seqs=256, classes=None):
    prof = AcceptanceProfile(classes=classes or [AcceptanceClass(conditional=cond, match_probability=match,
                                                                 heterogeneity=het)])
    return Deployment(target=LLAMA31_8B_H100_FIT, draft=DraftCost.for_method("eagle"),
                      engine=EngineConfig(kv_capacity_tokens=kv, max_num_seqs=seqs), acceptance=prof)


def closed(concurrency, n, prompt=100, output=200, classes=None):
    return WorkloadSpec(arrival=ArrivalSpec(kind="closed", concurrency=concurrency), num_requests=n,
                        prompt_len=LengthDist(mean=prompt), output_len=LengthDist(mean=output),
                        classes=classes or [RequestClass()])


def test_single_request_timing_follows_the_step_model():
    dep = deployment()
    run = simulate_cell(dep, closed(1, 1, prompt=500, output=11), SpecPolicy(kind="off"), records=True)
    rec = run.records[0]
    m = LLAMA31_8B_H100_FIT
    prefill = m.step_time(500, 500)  # KV read = context already cached (0) + the new tokens
    assert rec.ttft_s == pytest.approx(prefill, rel=1e-9)
    assert rec.output_tokens == 11 and rec.chunk_tokens == [1] * 11
    # decode step i reads the 500 prompt tokens, i - 1 generated ones already cached and the new one
    decode = [m.step_time(1, 500 + i) for i in range(1, 11)]
    assert rec.e2e_s == pytest.approx(prefill + sum(decode), rel=1e-9)
    assert rec.tpot_s == pytest.approx(np.mean(decode), rel=1e-9)


def test_acceptance_statistics_reproduce_the_configured_profile():
    dep = deployment()
    run = simulate_cell(dep, closed(32, 400, output=300), SpecPolicy(kind="fixed", k=3), seed=3)
    s = run.summary
    expected = unconditional_from_conditional(COND)
    assert s.per_position_acceptance_metrics == pytest.approx(expected, abs=0.01)
    assert s.mean_acceptance_length_metrics == pytest.approx(1 + sum(expected), abs=0.02)
    assert s.acceptance_rate_metrics == pytest.approx(sum(expected) / 3, abs=0.01)
    # one chunk per engine step: mean tokens per chunk ~ E[L] (first chunk and capped tails pull it down)
    assert s.mean_tokens_per_chunk == pytest.approx(1 + sum(expected), rel=0.05)


def test_ngram_mixture_counts_only_matched_steps_as_drafts():
    dep = deployment(cond=[0.9, 0.9, 0.9], match=0.2)
    run = simulate_cell(dep, closed(16, 200, output=300), SpecPolicy(kind="fixed", k=3), seed=1)
    eng = run.engine
    decode_steps = eng.chunks[: eng.n].sum() - eng.n  # every chunk after the first is a decode step
    assert eng.spec_drafts / decode_steps == pytest.approx(0.2, abs=0.02)
    assert run.summary.mean_acceptance_length_metrics == pytest.approx(1 + 0.9 + 0.81 + 0.729, abs=0.05)


def test_heterogeneity_spreads_per_request_acceptance():
    flat = simulate_cell(deployment(het=0.0), closed(16, 200), SpecPolicy(kind="fixed", k=3), seed=2).summary
    het = simulate_cell(deployment(het=1.0), closed(16, 200), SpecPolicy(kind="fixed", k=3), seed=2).summary
    spread = lambda s: s.acceptance_rate_per_request_p90 - s.acceptance_rate_per_request_p10  # noqa: E731
    assert spread(het) > 2 * spread(flat)


def test_temperature_classes_select_acceptance():
    classes = [AcceptanceClass(temperature=0.0, conditional=[0.9]), AcceptanceClass(temperature=1.0, conditional=[0.3])]
    dep = deployment(classes=classes)
    cold = simulate_cell(dep, closed(8, 100, classes=[RequestClass(temperature=0.0)]), SpecPolicy(k=1)).summary
    hot = simulate_cell(dep, closed(8, 100, classes=[RequestClass(temperature=1.0)]), SpecPolicy(k=1)).summary
    assert cold.acceptance_rate_metrics == pytest.approx(0.9, abs=0.03)
    assert hot.acceptance_rate_metrics == pytest.approx(0.3, abs=0.03)


def test_kv_pressure_preempts_and_everything_still_finishes():
    dep = deployment(kv=6_000)
    run = simulate_cell(dep, closed(32, 64, prompt=150, output=150), SpecPolicy(kind="fixed", k=3))
    assert run.engine.num_preemptions > 0
    assert run.summary.requests_ok == 64 and run.summary.requests_failed == 0
    assert run.engine.kv_used == 0


def test_request_larger_than_kv_cache_fails_cleanly():
    dep = deployment(kv=500)
    run = simulate_cell(dep, closed(1, 2, prompt=400, output=200), SpecPolicy(kind="off"))
    assert run.summary.requests_failed == 2
    assert run.summary.errors_by_kind == {"too_long_for_kv_cache": 2}


def test_max_num_seqs_caps_the_batch():
    dep = deployment(seqs=8)
    run = simulate_cell(dep, closed(32, 64), SpecPolicy(kind="off"))
    assert run.summary.mean_batch_size <= 8.0 + 1e-9
    assert run.summary.mean_batch_size > 6.0


def test_schedule_policy_turns_speculation_off_at_large_batch():
    sched = SpecPolicy(kind="schedule", schedule=[(1, 4, 3), (5, 1024, 0)])
    assert sched.k_for(3) == 3 and sched.k_for(5) == 0 and sched.k_for(5000) == 0
    run = simulate_cell(deployment(), closed(16, 48), sched)
    assert set(run.k_steps) <= {0, 3}
    assert run.k_steps.get(0, 0) > run.k_steps.get(3, 0)
    v0 = SpecPolicy(kind="disable_by_batch_size", k=3, disable_by_batch_size=10)
    assert v0.k_for(5, 4) == 3 and v0.k_for(5, 5) == 0


def test_oracle_is_an_upper_bound_on_throughput():
    dep = deployment()
    w = closed(128, 384, output=300)
    base = simulate_cell(dep, w, SpecPolicy(kind="off")).summary.output_tokens_per_s
    fixed = simulate_cell(dep, w, SpecPolicy(kind="fixed", k=5)).summary.output_tokens_per_s
    oracle = simulate_cell(dep, w, SpecPolicy(kind="oracle", k=5)).summary.output_tokens_per_s
    assert oracle >= 0.98 * max(base, fixed)


def test_records_match_the_shared_summary_definitions():
    dep = deployment()
    w = WorkloadSpec(arrival=ArrivalSpec(kind="poisson", qps=20), num_requests=120,
                     prompt_len=LengthDist(kind="lognormal", mean=200, cv=0.5), output_len=LengthDist(mean=64))
    run = simulate_cell(dep, w, SpecPolicy(kind="fixed", k=3), records=True, seed=5)
    shared = summarize_cell(run.records, role="speculative", source=Source.simulated, qps=20, k=3)
    fast = run.summary
    for field in ("ttft_p50_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "itl_per_chunk_p50_s",
                  "itl_per_token_p50_s", "mean_tokens_per_chunk", "acceptance_rate_per_request_p50"):
        assert getattr(fast, field) == pytest.approx(getattr(shared, field), rel=1e-6), field
    assert all(r.accepted_per_step and max(r.accepted_per_step) <= 3 for r in run.records)


def test_arrivals_rates_and_burstiness():
    rng_w = lambda kind, b=1.0: WorkloadSpec(arrival=ArrivalSpec(kind=kind, qps=10, burstiness=b),  # noqa: E731
                                            num_requests=4000)
    for kind in ("poisson", "constant", "gamma"):
        r = generate_requests(rng_w(kind, 0.5), seed=1)
        assert r.arrival_s.size / r.arrival_s[-1] == pytest.approx(10, rel=0.06)
    cv = lambda r: np.std(np.diff(r.arrival_s)) / np.mean(np.diff(r.arrival_s))  # noqa: E731
    assert cv(generate_requests(rng_w("gamma", 0.25), 1)) > 1.5 > cv(generate_requests(rng_w("poisson"), 1)) > 0.8
    assert cv(generate_requests(rng_w("constant"), 1)) < 1e-9


def test_length_distributions_and_trace(tmp_path):
    assert LengthDist.parse("512").sample(np.random.default_rng(0), 3).tolist() == [512] * 3
    ln = LengthDist.parse("lognormal:300:0.8").sample(np.random.default_rng(0), 20000)
    assert ln.mean() == pytest.approx(300, rel=0.05)
    with pytest.raises(UserError):
        LengthDist.parse("weird:1")
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 5.0, "prompt_tokens": 10, "output_tokens": 3}\n'
                     '{"timestamp": 5.5, "prompt_tokens": 20, "output_tokens": 4}\n')
    w = WorkloadSpec(arrival=ArrivalSpec(kind="trace"), trace_path=str(trace))
    r = generate_requests(w)
    assert r.arrival_s.tolist() == [0.0, 0.5] and r.prompt_tokens.tolist() == [10, 20]
    run = simulate_cell(deployment(), w, SpecPolicy(kind="off"))
    assert run.summary.requests_ok == 2


def test_dataset_lengths_and_trace_rescaling(tmp_path):
    data = tmp_path / "lengths.jsonl"
    data.write_text('{"prompt_tokens": 100, "output_tokens": 20}\n{"prompt_tokens": 300, "output_tokens": 40}\n')
    w = WorkloadSpec(arrival=ArrivalSpec(kind="poisson", qps=5), num_requests=200, dataset_path=str(data))
    r = generate_requests(w, seed=0)
    pairs = set(zip(r.prompt_tokens.tolist(), r.output_tokens.tolist()))
    assert pairs == {(100, 20), (300, 40)}
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(f'{{"timestamp": {i * 2}, "prompt_tokens": 5, "output_tokens": 5}}\n' for i in range(11)))
    native = generate_requests(WorkloadSpec(arrival=ArrivalSpec(kind="trace"), trace_path=str(trace)))
    fast = generate_requests(WorkloadSpec(arrival=ArrivalSpec(kind="trace", qps=2.0), trace_path=str(trace)))
    assert native.arrival_s[-1] == 20.0 and fast.arrival_s[-1] == pytest.approx(5.0)


@pytest.mark.parametrize("policy", [SpecPolicy(kind="off"), SpecPolicy(kind="schedule", schedule=[(1, 6, 3), (7, 256, 0)])])
def test_fast_forward_equals_stepping_one_by_one(policy):
    dep = deployment(kv=60_000)
    w = WorkloadSpec(arrival=ArrivalSpec(kind="poisson", qps=15), num_requests=300,
                     prompt_len=LengthDist(kind="lognormal", mean=300, cv=0.8),
                     output_len=LengthDist(kind="lognormal", mean=200, cv=0.8))
    fast = simulate_cell(dep, w, policy, seed=4)
    slow = simulate_cell(dep, w, policy, seed=4, fast_forward=False)
    assert fast.engine.steps == slow.engine.steps
    assert fast.k_steps == slow.k_steps
    a, b = fast.summary.model_dump(), slow.summary.model_dump()
    for key, value in b.items():
        if isinstance(value, float):
            assert a[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert a[key] == value, key

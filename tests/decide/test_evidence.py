"""Evidence loading (files, run directories, estimate results, both RunResult versions) and the break-even math."""

import json
from pathlib import Path

import pytest

from specwise.decide import DecideOptions, decide, load_evidence
from specwise.decide.adapter import parse_run, pair_cost, run_findings
from specwise.decide.breakeven import break_even, guard_tax, iid_length, robust_guard_pick
from specwise.decide.commands import repeats_needed
from specwise.errors import UserError
from specwise.perf.steptime import DraftCost
from specwise.schemas.estimate import (
    ContextInfo,
    EstimateResult,
    MethodEstimate,
    QuantizationEstimate,
    TemperatureEstimate,
)

from .builders import comparison, measured_run, servers, spec_cell, workload

NO_SIM = DecideOptions(simulate=False)


def test_a_bench_run_directory_is_read_through_its_summary(tmp_path):
    run = measured_run([comparison(1, 1.3)], [spec_cell(1, 0.0, 0.6, 3)], servers(3, "ngram"))
    d = tmp_path / "bench-run"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "summary.json").write_text(run.model_dump_json())
    ev = load_evidence([d])
    assert len(ev.runs) == 1 and ev.runs[0].firmness == "measured" and ev.runs[0].path == str(d)


def _v2_simulated(calibration: str) -> dict:
    """A schema-v2 simulated RunResult as JSON (typed inputs, Finding objects, simulation block)."""
    comps = [json.loads(comparison(x, 1.5, half=None).model_dump_json()) for x in (0.5, 1, 2, 4)]
    return {"schema_version": 2, "source": "simulated", "tool_version": "x", "cells": [], "comparisons": comps,
            "inputs": {"k": 3, "step_time": {"target": {}, "calibration": calibration}},
            "findings": [{"code": "simulated_crossover", "severity": "info", "message": "no crossover"}],
            "simulation": {"method": "ngram", "k": 3, "guard": {
                "num_speculative_tokens_per_batch_size": [[1, 8, 3], [9, 256, 0]], "mean_context_tokens": 700.0}}}


@pytest.mark.parametrize("calibration,firmness", [
    ("--step-time-model h200-vllm0.26-llama8b.json", "simulated_calibrated"),
    ("roofline from the catalog's model and GPU specs", "simulated_roofline")])
def test_a_v2_run_result_is_read_with_its_calibration_findings_and_guard(tmp_path, calibration, firmness):
    f = tmp_path / "sim.json"
    f.write_text(json.dumps(_v2_simulated(calibration)))
    r = load_evidence([f]).runs[0]
    assert r.firmness == firmness
    assert [x.message for x in run_findings(r.run)] == ["no crossover"]
    assert r.guard_schedule == [[1, 8, 3], [9, 256, 0]]
    with pytest.raises(ValueError):
        parse_run({"schema_version": 1, "source": "simulated", "tool_version": "x", "cells": [{"bad": 1}]})


def test_calibrated_simulation_never_gives_a_plain_enable(tmp_path):
    f = tmp_path / "sim.json"
    f.write_text(json.dumps(_v2_simulated("--step-time-model fit.json")))
    d = decide(workload([("s", 1, 0.0)], typical=1, peak=2), evidence=load_evidence([f]), options=NO_SIM)
    assert d.firmness != "measured" and d.verdict in ("BORDERLINE", "ENABLE_WITH_GUARD")


def _estimate(drop: float) -> EstimateResult:
    t = TemperatureEstimate(temperature=0.0, acceptance_rate=0.7, acceptance_rate_k=3, acceptance_rate_argmax_draft=0.7,
                            acceptance_rate_by_k=[0.8, 0.75, 0.7], expected_tokens_per_step=[1.8, 2.5, 3.1],
                            expected_tokens_per_step_argmax_draft=[1.8, 2.5, 3.1],
                            per_position_acceptance=[0.8, 0.7, 0.6], conditional_acceptance=[0.8, 0.875, 0.857],
                            mean_position_acceptance=0.8, match_probability=1.0, heterogeneity=0.4, recommended_k=3,
                            speedup_batch1_by_k=[1.5, 1.9, 2.1])
    m = MethodEstimate(method="draft_model", verification="lossless", draft="d", cost_ratio=0.1,
                       cost_ratio_source="test", temperatures=[t])
    q = QuantizationEstimate(method="draft_model", temperature=0.0, quantized="target int4",
                             acceptance_rate_reference=0.7, acceptance_rate_quantized=0.7 - drop, drop=drop,
                             within_five_points=drop <= 0.05)
    return EstimateResult(target="t", draft="d", device="cpu", dtype="float32",
                          context=ContextInfo(num_requests=8, num_tokens=800, generated=8, from_responses=0,
                                              context_temperatures=[0.0]),
                          k_max=3, acceptance_rate_definition="vLLM", method="draft_model", verification="lossless",
                          temperatures=[t], methods=[m], recommendations=[], quantization=[q])


def test_an_estimate_result_gives_a_profile_and_its_quantisation_rows(tmp_path):
    d = tmp_path / "est"
    d.mkdir()
    (d / "result.json").write_text(_estimate(0.08).model_dump_json())
    ev = load_evidence([d])
    assert len(ev.profiles) == 1 and ev.profiles[0].profile.source == "estimated"
    dec = decide(workload([("chat", 1, 0.0)], method="draft_model", draft="meta-llama/Llama-3.2-1B-Instruct", k=3),
                 evidence=ev, options=NO_SIM)
    q = next(f for f in dec.rules if f.code == "quantisation_drop")
    assert q.status == "fail" and q.observed == pytest.approx(0.08)
    row = next(f for f in dec.rules if f.code == "acceptance_vs_break_even")
    assert row.source == "estimated" and row.observed == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("text,msg", [("{not json", "not valid JSON"), ("[1, 2]", "not a specwise JSON"),
                                      ('{"request": {}, "memory": {}}', "does not validate")])
def test_bad_evidence_files_are_one_line_user_errors(tmp_path, text, msg):
    f = tmp_path / "x.json"
    f.write_text(text)
    with pytest.raises(UserError, match=msg) as exc:
        load_evidence([f])
    assert "\n" not in str(exc.value)


# ---- break-even math ----------------------------------------------------------------------------------------

def test_iid_length_matches_leviathan_table():
    assert iid_length(0.8, 4) == pytest.approx(3.36, abs=0.01)
    assert iid_length(0.6, 2) == pytest.approx(1.96, abs=0.01)


def test_break_even_with_a_free_draft_is_the_verify_cost_and_rises_with_batch():
    cost = pair_cost(workload([("a", 1, 0.0)], method="draft_model", draft="meta-llama/Llama-3.2-1B-Instruct", k=4))
    free = DraftCost(method="none")
    b1 = break_even(cost.target, free, batch=1, k=4, mean_context=700)
    assert b1.acceptance_length == pytest.approx(b1.verify_ratio)
    assert 1.0 <= b1.acceptance_length < 1.05  # verifying 5 tokens at batch 1 is almost free (memory-bound)
    with_draft = break_even(cost.target, cost.draft, batch=1, k=4, mean_context=700)
    # Leviathan Thm 3.8 at batch 1: E[L]* = 1 + k*c with c priced against the whole step
    assert with_draft.acceptance_length == pytest.approx(b1.acceptance_length + 4 * with_draft.cost_ratio, rel=0.15)
    big = break_even(cost.target, cost.draft, batch=256, k=4, mean_context=700)
    assert big.acceptance_rate > with_draft.acceptance_rate


def test_guard_tax_interpolates_issue_49548():
    assert guard_tax(2) == pytest.approx(0.066)
    assert guard_tax(189) == pytest.approx(0.216)
    assert guard_tax(1000) == pytest.approx(0.216) and guard_tax(1) == pytest.approx(0.066)
    assert 0.066 < guard_tax(20) < 0.216


def test_robust_pick_prefers_stable_k_and_ties_go_to_the_smaller_k():
    assert robust_guard_pick({1: [1.20, 1.20, 1.20], 3: [1.21, 1.21, 1.21]})[0] == 1  # within 1%
    assert robust_guard_pick({1: [1.20, 1.20, 1.20], 3: [1.25, 1.25, 1.25]})[0] == 3
    assert robust_guard_pick({1: [1.10, 1.11, 1.09], 3: [1.30, 1.60, 0.90]})[0] == 1  # MAD penalty
    assert robust_guard_pick({2: [0.9, 0.91, 0.89]})[0] == 0  # off beats a measured loss
    assert robust_guard_pick({2: [None]}) is None


def test_repeats_needed_from_the_observed_interval():
    assert repeats_needed(1.05, 0.95, 1.15, 3) == 15  # 3 * (0.1 / 0.045)^2 = 14.8
    assert repeats_needed(1.5, 1.45, 1.55, 3) == 3
    assert repeats_needed(1.2, None, None, 1) == 3


EXAMPLES = sorted((Path(__file__).parents[2] / "examples").rglob("*.yaml"))
EXPECTED = {"70b-8b-2xh100.yaml": "DOES_NOT_FIT", "ttft-bound.yaml": "DISABLE"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_profile_loads_and_decides(path):
    from specwise.decide import load_workload

    d = decide(load_workload(path), options=NO_SIM)
    assert d.verdict == EXPECTED.get(path.name, "BORDERLINE")  # profile only: nothing measured
    assert d.firmness in ("assumed", "estimated")


def test_a_workload_profile_among_the_evidence_is_the_workload():
    ev = load_evidence([EXAMPLES[0]])
    assert ev.workload is not None and not ev.runs and not ev.plans
    assert decide(None, evidence=ev, options=NO_SIM).workload == ev.workload


def test_a_calibrated_run_sets_the_step_time_the_break_even_uses(tmp_path):
    w = workload([("s", 1, 0.0)], typical=1, peak=2, method="draft_model", draft="meta-llama/Llama-3.2-1B-Instruct",
                 k=4)
    roof = pair_cost(w).target
    slow = roof.model_copy(update={"t_fix_s": roof.t_fix_s * 5, "label": "fitted: slow host"})
    data = _v2_simulated("--step-time-model fit.json")
    data["inputs"]["step_time"]["target"] = json.loads(slow.model_dump_json())
    f = tmp_path / "sim.json"
    f.write_text(json.dumps(data))
    cal = decide(w, evidence=load_evidence([f]), options=NO_SIM)
    plain = decide(w, options=NO_SIM)
    # a larger fixed cost per target forward makes the draft relatively cheaper: the break-even falls
    assert cal.monitor.break_even_acceptance < plain.monitor.break_even_acceptance

"""The seed's scenarios, end to end from evidence to verdict (issue 11, "Done when").

Plans and simulations are real stage outputs (decide runs them); measured runs are constructed RunResults in
bench's schema (tests/decide/builders.py), since a real GPU A/B takes minutes.
"""

import pytest

from specwise.decide import DecideOptions, decide
from specwise.decide.evidence import ProfileEvidence

from .builders import base_cell, breakdown, comparison, measured_run, profile, servers, spec_cell, workload

FAST = DecideOptions(sim_requests=60, created_at="2026-12-03T00:00:00+00:00")
NO_SIM = DecideOptions(simulate=False, created_at="2026-12-03T00:00:00+00:00")


def rule(d, code):
    return next(f for f in d.rules if f.code == code)


def test_low_qps_t0_summarisation_with_ngram_is_enable_on_measured_evidence():
    w = workload([("summarization", 1.0, 0.0)], typical=1, peak=2, method="ngram", k=3)
    loads = [0.5, 1, 2, 4]
    run = measured_run([comparison(x, 1.55 - 0.05 * i, half=0.06) for i, x in enumerate(loads)],
                       [spec_cell(x, 0.0, 0.62, 3, p10=0.35) for x in loads] + [base_cell(x, 0.0) for x in loads],
                       servers(3, "ngram"), breakdown=[breakdown(0.0, 0.35, 0.64)])
    d = decide(w, runs=[run], options=NO_SIM)
    assert d.verdict == "ENABLE", d.headline
    assert d.firmness == "measured"
    assert rule(d, "load_peak").status == "pass" and rule(d, "load_typical").status == "pass"
    assert rule(d, "acceptance_vs_break_even").status == "pass"
    assert d.config is not None and d.config.speculative
    assert d.config.speculative_config["method"] == "ngram"
    assert d.config.speculative_config["num_speculative_tokens"] == 3
    assert "--speculative-config" in d.config.vllm_command and d.config.sglang_command
    assert d.monitor.break_even_acceptance is not None and d.monitor.break_even_acceptance < 0.62
    assert d.monitor.slo_metric == "e2e"
    assert any("specwise monitor rules --decision" in s for s in d.next_steps)


def test_same_workload_on_uncalibrated_simulation_alone_is_at_most_borderline():
    w = workload([("summarization", 1.0, 0.0)], typical=1, peak=2, method="ngram", k=3)
    d = decide(w, profiles=[profile([("all", 0.0, 0.85, None)], method="ngram")], options=FAST)
    assert d.verdict == "BORDERLINE"
    assert d.firmness == "simulated_roofline"
    assert rule(d, "load_peak").source == "simulated"
    assert any(s.startswith("settle it: specwise bench") for s in d.next_steps)
    assert "--repeats 3" in d.next_steps[-1] and "--qps 1,2,3" in d.next_steps[-1]


def test_saturated_chat_at_t1_with_a_draft_model_is_disable():
    w = workload([("chat", 1.0, 1.0)], typical=64, peak=128, kind="concurrency",
                 target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.1-8B-Instruct",
                 method="draft_model", k=4, gpus=4)
    loads = [32, 64, 128]
    run = measured_run([comparison(x, s, kind="concurrency") for x, s in zip(loads, [0.86, 0.78, 0.62])],
                       [spec_cell(x, 1.0, 0.33, 4, p10=0.12, kind="concurrency") for x in loads],
                       servers(4, "draft_model"))
    d = decide(w, runs=[run], options=NO_SIM)
    assert d.verdict == "DISABLE", d.headline
    assert rule(d, "temperature_median").status == "fail"
    assert rule(d, "acceptance_vs_break_even").status == "fail"
    assert d.config is not None and not d.config.speculative and "--speculative-config" not in d.config.vllm_command


def test_mixed_json_and_creative_is_borderline_with_the_mixed_workload_diagnosis():
    # i.i.d. alpha 0.925 -> 0.83 accepted/drafted at k=4; 0.65 -> 0.38; weighted 0.6*0.83+0.4*0.38 ~ 0.65
    w = workload([("json_extraction", 0.6, 0.1), ("creative", 0.4, 1.0)], typical=2, peak=6,
                 draft="meta-llama/Llama-3.2-3B-Instruct", method="draft_model", k=4)
    prof = profile([("json_extraction", 0.1, 0.925, 0.7), ("creative", 1.0, 0.65, 0.2)],
                   draft="meta-llama/Llama-3.2-3B-Instruct")
    d = decide(w, profiles=[prof], options=FAST)
    assert d.verdict == "BORDERLINE"
    rows = {f.evidence["category"]: f for f in d.rules if f.code == "acceptance_vs_break_even"}
    assert rows["json_extraction"].observed == pytest.approx(0.83, abs=0.01)
    assert rows["creative"].observed == pytest.approx(0.38, abs=0.01)
    assert rows["json_extraction"].status == "pass" and rows["creative"].status == "fail"
    weighted = rule(d, "acceptance_weighted")
    assert weighted.observed == pytest.approx(0.65, abs=0.01)
    assert weighted.observed > 0.5  # above the seed's rule of thumb: the aggregate looks healthy
    mixed = rule(d, "mixed_workload")
    assert mixed.status == "fail" and "mixed workload" in d.headline
    assert mixed.evidence["confirmed"] is False and "specwise bench" in mixed.meaning
    assert "--temperatures 0.1,1" in mixed.meaning


def test_70b_bf16_with_8b_bf16_on_two_h100_does_not_fit_and_names_the_fp8_alternative():
    w = workload([("chat", 1.0, 0.7)], target="meta-llama/Llama-3.1-70B-Instruct",
                 draft="meta-llama/Llama-3.1-8B-Instruct", method="draft_model", k=4, gpus=2)
    d = decide(w, options=FAST)
    assert d.verdict == "DOES_NOT_FIT"
    fit = rule(d, "plan_fits")
    assert fit.status == "fail" and fit.severity == "blocking"
    assert "FP8" in fit.meaning and "KV tokens" in fit.meaning
    assert fit.evidence["FP8 kv_tokens"] > 0 and fit.evidence["FP8 max_concurrency"] >= 1
    assert "FP8" in d.headline
    assert not any(r.kind == "run_result" for r in d.evidence)  # nothing simulated for a plan that cannot start
    plan_ref = next(r for r in d.evidence if r.kind == "plan")
    assert plan_ref.command.startswith("specwise plan --target meta-llama/Llama-3.1-70B-Instruct --draft")
    assert "--gpus 2" in plan_ref.command and "--max-model-len 8192" in plan_ref.command


def test_ttft_bound_slo_is_not_helped():
    w = workload([("chat", 1.0, 0.0)], typical=1, peak=2, slo="ttft", method="ngram", k=3)
    run = measured_run([comparison(x, 1.4, ttft=0.9) for x in (1, 2, 4)],
                       [spec_cell(x, 0.0, 0.6, 3) for x in (1, 2, 4)], servers(3, "ngram"))
    d = decide(w, runs=[run], options=NO_SIM)
    assert d.verdict == "DISABLE"
    assert "does not help this SLO" in d.headline and "TTFT P50 +11%" in d.headline
    assert rule(d, "slo_type").status == "fail"


def test_int4_target_losing_more_than_five_points_says_revisit_quantisation():
    w = workload([("chat", 1.0, 0.0)], target="meta-llama/Llama-3.1-70B-Instruct",
                 draft="meta-llama/Llama-3.2-1B-Instruct", method="draft_model", k=4, gpus=4, quant="awq")
    ref = profile([("all", 0.0, 0.80, None)], target="meta-llama/Llama-3.1-70B-Instruct")
    q = profile([("all", 0.0, 0.72, None)], target="hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4")
    d = decide(w, profiles=[ProfileEvidence(profile=ref, reference=True), q], options=FAST)
    quant = rule(d, "quantisation_drop")
    assert quant.status == "fail" and quant.observed > 0.05
    assert "revisit quantisation" in quant.meaning
    assert d.verdict == "BORDERLINE" and "revisit quantisation" in d.headline
    assert d.monitor.baseline_acceptance == pytest.approx(quant.evidence["reference_acceptance"], abs=1e-3)


def test_summarisation_with_ngram_is_enable_on_a_real_bench_run_directory():
    """The same scenario on what `specwise bench` wrote against two serve-sim servers (fixtures/.../COMMAND.md)."""
    from pathlib import Path

    from specwise.decide import load_evidence, load_workload

    here = Path(__file__).parent
    run_dir = here / "fixtures" / "bench_serve_sim_ngram"
    w = load_workload(here.parents[1] / "examples" / "workloads" / "summarisation-ngram.yaml")
    d = decide(w, evidence=load_evidence([run_dir]), options=NO_SIM)
    assert d.verdict == "ENABLE", d.headline
    assert d.firmness == "measured"
    assert any(e.path == str(run_dir) and e.firmness == "measured" for e in d.evidence)
    assert rule(d, "not_lossless").status == "pass" and rule(d, "like_for_like").status == "pass"
    assert rule(d, "p10_below_break_even").status == "pass"
    peak = rule(d, "load_peak")
    assert peak.evidence["ci_low"] > 1.0
    assert peak.evidence["loads"] == [0.5, 1.0, 2.0, 4.0]  # the speedup with its interval at every load run
    assert len(peak.evidence["speedup_ci_low"]) == 4 and min(peak.evidence["speedup_ci_low"]) > 1.0
    assert d.config.speculative_config["method"] == "ngram"


def test_closed_loop_profile_is_simulated_at_its_concurrencies():
    w = workload([("chat", 1.0, 0.0)], typical=4, peak=8, kind="concurrency", method="ngram", k=3)
    d = decide(w, options=DecideOptions(sim_requests=40))
    peak = rule(d, "load_peak")
    assert peak.evidence["loads"] == [2.0, 4.0, 8.0, 12.0] and peak.status in ("pass", "fail")
    assert "in flight" in peak.rule
    assert d.verdict == "BORDERLINE" and d.firmness == "simulated_roofline"
    assert "--arrival closed_loop --concurrency 8" in d.next_steps[-1]


def test_a_deployment_with_a_catalog_calibration_is_simulated_calibrated_and_says_its_mode_switch():
    # issue 12's calibration: H200, vLLM 0.26, Llama-3.1-8B-shaped target with a Llama-3.2-1B-shaped draft
    w = workload([("chat", 1.0, 0.0)], typical=2, peak=8, target="meta-llama/Llama-3.1-8B-Instruct",
                 draft="meta-llama/Llama-3.2-1B-Instruct", method="draft_model", k=4, gpu="H200")
    w = w.model_copy(update={"deployment": w.deployment.model_copy(update={"vllm_version": "0.26.0"})})
    d = decide(w, options=FAST)
    sim = next(e for e in d.evidence if e.kind == "run_result")
    assert sim.firmness == "simulated_calibrated" and "h200-vllm0.26" in sim.description
    assert d.firmness == "simulated_calibrated" and d.verdict != "ENABLE"
    assert "--vllm-version 0.26.0" in sim.command
    l4l = rule(d, "like_for_like")
    assert l4l.status == "unknown" and "engine mode" in l4l.message
    host = rule(d, "host_class")  # the calibration's other host class was simulated too
    assert host.status in ("pass", "fail") and host.evidence["host_classes"] == ["fast", "slow"]


def test_a_calibrated_simulation_whose_host_classes_disagree_is_held_at_borderline():
    # issue 12: fast instances of the H200 ran the synchronous speculative step 1.3-1.9x quicker than slow ones;
    # with a high-acceptance pair at 2 req/s the fast class wins and the slow one loses, so the host decides
    from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile

    w = workload([("chat", 1.0, 0.0)], typical=2, peak=4, target="meta-llama/Llama-3.1-8B-Instruct",
                 draft="meta-llama/Llama-3.2-1B-Instruct", method="draft_model", k=4, gpu="H200")
    w = w.model_copy(update={"deployment": w.deployment.model_copy(update={"vllm_version": "0.26.0"})})
    rates = [0.9, 0.8, 0.7, 0.6]  # vLLM's per-position rates; conditional = a_i / a_(i-1)
    high = AcceptanceProfile(method="draft_model", source="estimated", classes=[AcceptanceClass(
        conditional=[rates[0]] + [b / a for a, b in zip(rates, rates[1:])])])
    d = decide(w, profiles=[high], options=FAST)
    host = rule(d, "host_class")
    assert host.status == "fail" and host.evidence["host_classes"] == ["fast", "slow"]
    fast, slow = host.evidence["speedups"]
    assert fast > 1.0 > slow and host.observed == slow
    assert "--calibration-host slow" in host.evidence["commands"][0]
    assert d.verdict == "BORDERLINE" and "host decides" in d.headline and d.firmness == "simulated_calibrated"
    assert any("specwise bench" in s for s in d.next_steps)
    # the same pair at low acceptance loses on every host: no hold from the host, the speed rules decide
    low = high.model_copy(update={"classes": [AcceptanceClass(conditional=[0.5, 0.6, 0.5, 0.33])]})
    assert rule(decide(w, profiles=[low], options=FAST), "host_class").status == "pass"


def test_host_class_rule_is_silent_without_a_calibration_that_has_classes():
    w = workload([("chat", 1.0, 0.0)], typical=2, peak=8)
    assert rule(decide(w, options=FAST), "host_class").status == "unknown"

"""Every rule on its own, with agreeing and conflicting evidence (no simulation: evidence is given)."""

import math

import pytest

from specwise.decide import DecideOptions, decide
from specwise.decide.evidence import RunEvidence

from .builders import (
    base_cell,
    breakdown,
    comparison,
    crossover,
    measured_run,
    profile,
    servers,
    simulated_run,
    spec_cell,
    workload,
)

NO_SIM = DecideOptions(simulate=False, created_at="2026-12-03T00:00:00+00:00")
LOADS = [0.5, 1, 2, 4]


def rule(d, code):
    return next(f for f in d.rules if f.code == code)


def ngram_w(**kw):
    args = dict(typical=1, peak=2, method="ngram", k=3)
    args.update(kw)
    return workload([("summarization", 1.0, 0.0)], **args)


def winning_run(temps=(0.0,), speedup=1.5, half=0.06, srv=None, lossless=True, acc=0.62, p10=0.35, **kw):
    comps, cells = [], []
    for t in temps:
        comps += [comparison(x, speedup, half=half, temperature=t, **kw) for x in LOADS]
        cells += [spec_cell(x, t, acc, 3, p10=p10) for x in LOADS] + [base_cell(x, t) for x in LOADS]
    return measured_run(comps, cells, srv or servers(3, "ngram"), lossless=lossless)


# ---- fit --------------------------------------------------------------------------------------------------

def test_fit_rules_pass_for_a_small_pair_and_report_the_kv_cost():
    d = decide(ngram_w(), runs=[winning_run()], options=NO_SIM)
    assert rule(d, "plan_fits").status == "pass"
    assert rule(d, "draft_vram_share").observed == 0.0  # n-gram has no weights
    assert rule(d, "target_vram_share").status == "pass"
    assert rule(d, "kv_concurrency").status == "pass"


def test_a_draft_above_15_percent_of_vram_fails_its_rule():
    w = workload([("chat", 1.0, 0.0)], target="meta-llama/Llama-3.1-70B-Instruct", gpus=4,
                 draft="meta-llama/Llama-3.1-8B-Instruct", method="draft_model", k=4)
    d = decide(w, options=NO_SIM)
    assert rule(d, "plan_fits").status == "pass"
    w1 = workload([("chat", 1.0, 0.0)], target="meta-llama/Llama-3.1-8B-Instruct", gpu="L4",
                  draft="meta-llama/Llama-3.2-3B-Instruct", method="draft_model", k=4, max_model_len=2048)
    d1 = decide(w1, options=NO_SIM)
    draft = rule(d1, "draft_vram_share")
    assert draft.status == "fail" and draft.observed > 0.15


def test_peak_concurrency_beyond_the_kv_cache_fails():
    w = ngram_w(typical=500, peak=5000, kind="concurrency")
    d = decide(w, options=NO_SIM)
    kv = rule(d, "kv_concurrency")
    assert kv.status == "fail" and kv.observed == 5000


# ---- acceptance ---------------------------------------------------------------------------------------------

def test_measured_acceptance_overrides_a_conflicting_estimate():
    est = profile([("all", 0.0, 0.95, None)], method="ngram")
    run = winning_run(acc=0.05, p10=0.0)  # the server accepted almost nothing
    d = decide(ngram_w(), profiles=[est], runs=[run], options=NO_SIM)
    row = rule(d, "acceptance_vs_break_even")
    assert row.source == "measured" and row.observed == pytest.approx(0.05)


def test_break_even_rises_with_the_batch_the_load_implies():
    prof = profile([("all", 0.0, 0.6, None)], draft="meta-llama/Llama-3.2-1B-Instruct")
    low = decide(workload([("chat", 1, 0.0)], typical=1, peak=1, kind="concurrency", method="draft_model",
                          draft="meta-llama/Llama-3.2-1B-Instruct", k=4), profiles=[prof], options=NO_SIM)
    high = decide(workload([("chat", 1, 0.0)], typical=128, peak=200, kind="concurrency", method="draft_model",
                           draft="meta-llama/Llama-3.2-1B-Instruct", k=4), profiles=[prof], options=NO_SIM)
    assert low.monitor.break_even_acceptance < high.monitor.break_even_acceptance
    row = rule(low, "acceptance_vs_break_even")
    assert row.evidence["rule_of_thumb_net_negative"] == 0.5 and row.evidence["rule_of_thumb_healthy"] == 0.65


def test_p10_below_break_even_is_its_own_finding():
    w = workload([("chat", 1.0, 0.0)], typical=64, peak=128, kind="concurrency", method="draft_model",
                 draft="meta-llama/Llama-3.2-1B-Instruct", k=4)
    run = measured_run([comparison(x, 1.3, kind="concurrency") for x in (32, 64, 128)],
                       [spec_cell(x, 0.0, 0.7, 4, kind="concurrency") for x in (32, 64, 128)],
                       servers(4, "draft_model"), breakdown=[breakdown(0.0, 0.05, 0.7)])
    d = decide(w, runs=[run], options=NO_SIM)
    assert rule(d, "acceptance_vs_break_even").status == "pass"
    p10 = rule(d, "p10_below_break_even")
    assert p10.status == "fail" and p10.observed == pytest.approx(0.05)


def test_evidence_only_below_production_temperature_cannot_enable():
    w = workload([("chat", 1.0, 0.9)], typical=1, peak=2, method="ngram", k=3)
    d = decide(w, runs=[winning_run(temps=(0.0,))], options=NO_SIM)
    assert rule(d, "temperature_coverage").status == "fail"
    assert d.verdict == "BORDERLINE" and "below the production temperature" in d.headline
    assert d.firmness == "measured" and "only below the production temperature" in d.firmness_note


def test_quantisation_from_estimate_rows_and_a_small_drop_passes():
    w = ngram_w()
    ref = profile([("all", 0.0, 0.80, None)], target="meta-llama/Llama-3.1-8B-Instruct", method="ngram")
    q = profile([("all", 0.0, 0.79, None)], target="neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", method="ngram")
    d = decide(w, profiles=[ref, q], runs=[winning_run()], options=NO_SIM)
    assert rule(d, "quantisation_drop").status == "pass"
    assert d.verdict == "ENABLE"


def test_method_rule_prefers_ngram_for_summarisation_and_the_draft_for_chat():
    w = workload([("summarization", 0.5, 0.0), ("chat", 0.5, 0.0)], method="draft_model",
                 draft="meta-llama/Llama-3.2-1B-Instruct", k=4)
    ng = profile([("summarization", 0.0, 0.9, None), ("chat", 0.0, 0.3, None)], method="ngram")
    dm = profile([("summarization", 0.0, 0.7, None), ("chat", 0.0, 0.7, None)], method="draft_model")
    d = decide(w, profiles=[dm, ng], options=NO_SIM)
    m = rule(d, "method_choice")
    assert m.status == "fail"
    assert "summarization: ngram" in m.message and "chat: draft_model" in m.message


# ---- load, noise, SLO ---------------------------------------------------------------------------------------

def test_an_interval_including_one_is_not_a_win_and_asks_for_repeats():
    run = winning_run(speedup=1.04, half=0.08)
    d = decide(ngram_w(), runs=[run], options=NO_SIM)
    assert rule(d, "load_peak").status == "unknown"
    noise = rule(d, "noise")
    assert noise.status == "fail" and noise.evidence["repeats_needed"] > 3
    assert d.verdict == "BORDERLINE"
    assert f"--repeats {noise.evidence['repeats_needed']}" in d.next_steps[-1]


def _unsteady(run, load, spread=1.65):
    from specwise.schemas.findings import Finding

    run.findings.append(Finding(code="step_time_unsteady", severity="warning", source="measured",
                                message=f"speculative qps={load:g} T=0: step switched speeds",
                                evidence={"load": load, "temperature": 0.0, "spread": spread}))
    return run


def test_one_repeat_of_an_unsteady_speculative_step_is_not_a_win_however_narrow_its_interval():
    run = winning_run(speedup=1.3, half=0.03, repeats=1)
    assert decide(ngram_w(), runs=[run], options=NO_SIM).verdict.startswith("ENABLE")
    d = decide(ngram_w(), runs=[_unsteady(winning_run(speedup=1.3, half=0.03, repeats=1), 2.0)], options=NO_SIM)
    noise = rule(d, "noise")
    assert noise.status == "fail" and "switched speeds" in noise.message and noise.evidence["repeats_needed"] >= 3
    assert "13 of 34" in noise.meaning and d.verdict == "BORDERLINE"
    assert f"--repeats {noise.evidence['repeats_needed']}" in d.next_steps[-1]
    assert "--duration 60" in noise.evidence["bench_command"]
    # three repeats: the interval carries the differences between repeats, and the rule lets it stand
    d3 = decide(ngram_w(), runs=[_unsteady(winning_run(speedup=1.3, half=0.03, repeats=3), 2.0)], options=NO_SIM)
    assert rule(d3, "noise").status == "pass"
    # an unsteady cell far from the typical and peak loads does not hold the verdict
    far = decide(ngram_w(), runs=[_unsteady(winning_run(speedup=1.3, half=0.03, repeats=1), 4.0)], options=NO_SIM)
    assert rule(far, "noise").status == "pass"


def test_peak_beyond_the_loads_run_is_unknown_not_extrapolated():
    d = decide(ngram_w(typical=1, peak=40), runs=[winning_run()], options=NO_SIM)
    peak = rule(d, "load_peak")
    assert peak.status == "unknown" and "beyond" in peak.message
    assert rule(d, "acceptance_alone_at_peak").status == "unknown"
    assert d.verdict == "BORDERLINE"


def fixed_and_guarded_ngram_runs():
    """Measured n-gram runs at LOADS: fixed k=3 slower at the top load, and k=3 guarded off above batch 8."""
    fixed = measured_run([comparison(x, s) for x, s in zip(LOADS, [1.5, 1.4, 1.1, 0.8])],
                         [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram"))
    guard_cfg = {"method": "ngram", "num_speculative_tokens": 3,
                 "num_speculative_tokens_per_batch_size": [[1, 8, 3], [9, 1024, 0]]}
    guarded = measured_run([comparison(x, s) for x, s in zip(LOADS, [1.45, 1.35, 1.08, 1.0])],
                           [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram", spec_config=guard_cfg))
    return fixed, guarded


def test_faster_at_typical_slower_at_peak_with_a_measured_guard_is_enable_with_guard():
    w = ngram_w(typical=1, peak=4)
    fixed, guarded = fixed_and_guarded_ngram_runs()
    d = decide(w, runs=[fixed, guarded], options=NO_SIM)
    assert rule(d, "load_peak").status == "fail" and rule(d, "guard_viability").source == "measured"
    assert d.verdict == "ENABLE_WITH_GUARD"
    assert d.config.guard_schedule == [[1, 8, 3], [9, 1024, 0]] and d.config.guard_source == "measured"
    assert "num_speculative_tokens_per_batch_size" in d.config.vllm_command


def test_throughput_slo_uses_the_throughput_ratio():
    run = winning_run(throughput=0.9)
    d = decide(ngram_w(slo="throughput"), runs=[run], options=NO_SIM)
    assert rule(d, "slo_type").status == "fail" and rule(d, "slo_type").observed == pytest.approx(0.9)
    assert d.verdict == "DISABLE" and "throughput" in d.headline  # measured: E2E gains do not serve this SLO


def test_tpot_slo_is_judged_on_tpot_speedups():
    run = winning_run(tpot=0.9)  # E2E looks faster (1.5x) but per-token latency is slower
    d = decide(ngram_w(slo="tpot"), runs=[run], options=NO_SIM)
    peak = rule(d, "load_peak")
    assert peak.status == "fail" and peak.unit == "speedup TPOT P50"
    assert d.verdict == "DISABLE"
    assert decide(ngram_w(slo="e2e"), runs=[run], options=NO_SIM).verdict == "ENABLE"


def test_a_peak_that_no_longer_fits_beside_the_draft_holds_a_simulated_win():
    w = ngram_w(typical=500, peak=5000, kind="concurrency")
    sim = RunEvidence(run=simulated_run([comparison(x, 1.3, half=None, kind="concurrency") for x in (250, 500, 5000)]),
                      firmness="simulated_calibrated")
    d = decide(w, runs=[sim], options=NO_SIM)
    assert rule(d, "kv_concurrency").status == "fail"
    assert d.verdict == "BORDERLINE" and "no longer fits" in d.headline


# ---- mixed workload -----------------------------------------------------------------------------------------

def test_p50_up_p99_down_confirmed_by_per_temperature_cells():
    w = workload([("json_extraction", 0.6, 0.0), ("creative", 0.4, 1.0)], typical=1, peak=2, method="ngram", k=3)
    comps = [comparison(x, 1.2, p99=0.85) for x in LOADS]  # the mix
    comps += [comparison(x, 1.4, temperature=0.0) for x in LOADS]
    comps += [comparison(x, 0.8, temperature=1.0) for x in LOADS]
    cells = [spec_cell(x, t, a, 3) for x in LOADS for t, a in ((0.0, 0.7), (1.0, 0.1))]
    d = decide(w, runs=[measured_run(comps, cells, servers(3, "ngram"))], options=NO_SIM)
    mixed = rule(d, "mixed_workload")
    assert mixed.status == "fail" and mixed.evidence["confirmed"] is True
    assert "P99 slower" in mixed.message
    assert d.verdict == "BORDERLINE"


def test_mixed_workload_refuted_when_every_temperature_moves_the_same_way():
    w = workload([("a", 0.5, 0.0), ("b", 0.5, 1.0)], typical=1, peak=2, method="ngram", k=3)
    comps = [comparison(x, 1.2, p99=0.9) for x in LOADS]
    comps += [comparison(x, 1.2, temperature=t) for x in LOADS for t in (0.0, 1.0)]
    cells = [spec_cell(x, t, 0.6, 3) for x in LOADS for t in (0.0, 1.0)]
    d = decide(w, runs=[measured_run(comps, cells, servers(3, "ngram"))], options=NO_SIM)
    mixed = rule(d, "mixed_workload")
    assert mixed.status == "unknown" and mixed.evidence["refuted"] is True


# ---- like-for-like, losslessness, disagreement ----------------------------------------------------------------

def test_arms_differing_besides_speculation_cannot_enable():
    srv = servers(3, "ngram", differ={"enable_prefix_caching": "False"})
    d = decide(ngram_w(), runs=[winning_run(srv=srv)], options=NO_SIM)
    l4l = rule(d, "like_for_like")
    assert l4l.status == "fail" and "enable_prefix_caching" in l4l.message
    assert d.verdict == "BORDERLINE"


def test_arms_differing_cannot_disable_either():
    srv = servers(3, "ngram", differ={"max_num_seqs": "128"})
    d = decide(ngram_w(), runs=[winning_run(srv=srv, speedup=0.7)], options=NO_SIM)
    assert d.verdict == "BORDERLINE"


def test_a_like_for_like_baseline_is_used_when_measured():
    srv = servers(3, "ngram", differ={"enable_prefix_caching": "False"})
    run = measured_run([comparison(x, 0.9) for x in LOADS] + [comparison(x, 1.5, role="baseline_like_for_like")
                                                              for x in LOADS],
                       [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], srv)
    d = decide(ngram_w(), runs=[run], options=NO_SIM)
    assert rule(d, "like_for_like").status == "pass"
    assert rule(d, "load_peak").evidence["baseline_role"] == "baseline_like_for_like"
    assert d.verdict == "ENABLE"


def test_failed_losslessness_overrides_a_measured_speedup():
    d = decide(ngram_w(), runs=[winning_run(lossless=False)], options=NO_SIM)
    assert rule(d, "not_lossless").status == "fail" and rule(d, "not_lossless").severity == "blocking"
    assert d.verdict == "DISABLE" and "engine defect" in d.headline


def test_simulated_and_measured_disagreeing_is_a_finding_with_the_calibration_fix():
    sim = simulated_run([comparison(x, 1.67, half=None) for x in LOADS],
                        crossovers=[crossover("simulated", None, LOADS, [1.67] * 4, position="above_range")])
    meas = measured_run([comparison(x, s) for x, s in zip(LOADS, [1.2, 1.1, 0.9, 0.79])],
                        [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram"),
                        crossovers=[crossover("measured", 1.5, LOADS, [1.2, 1.1, 0.9, 0.79])])
    d = decide(ngram_w(), runs=[sim, meas], options=NO_SIM)
    dis = rule(d, "evidence_disagreement")
    assert dis.status == "fail" and "fit_from_run_result" in dis.meaning
    assert rule(d, "load_peak").source == "measured"  # the measurement wins
    assert d.verdict in ("BORDERLINE", "DISABLE") and d.verdict != "ENABLE"


# ---- guard ------------------------------------------------------------------------------------------------

def test_simulated_guard_pays_its_tax_and_stays_labelled_simulated():
    w = ngram_w(typical=60, peak=120, kind="concurrency")
    sim = simulated_run([comparison(x, 1.05, half=None, kind="concurrency") for x in (30, 60, 120, 180)],
                        cells=[spec_cell(x, 0.0, 0.6, 3, kind="concurrency", source="simulated") for x in (30, 60, 120)])
    ev = RunEvidence(run=sim, firmness="simulated_roofline", guard_schedule=[[1, 64, 3], [65, 256, 1]],
                     guard_speedups={60.0: 1.08, 120.0: 1.06, 180.0: 1.0})
    d = decide(w, runs=[ev], options=NO_SIM)
    g = rule(d, "guard_viability")
    assert g.source == "simulated" and g.status == "fail"
    w_log = (math.log(120) - math.log(2)) / (math.log(189) - math.log(2))
    assert g.evidence["tax"] == pytest.approx(0.066 + (0.216 - 0.066) * w_log, abs=1e-3)
    assert g.observed == pytest.approx(1.06 / (1 + g.evidence["tax"]), abs=1e-3)
    assert "#49548" in g.meaning
    loose = DecideOptions(simulate=False, guard_tax_low=(2, 0.0), guard_tax_high=(189, 0.01))
    assert rule(decide(w, runs=[ev], options=loose), "guard_viability").status == "pass"


def test_guard_chosen_per_band_from_measured_fixed_k_repeats():
    w = ngram_w(typical=8, peak=64, kind="concurrency")
    runs = []
    for k, by_load in ((1, {8: [1.20, 1.21, 1.19], 64: [1.05, 1.06, 1.04]}),
                       (3, {8: [1.40, 1.41, 1.39], 64: [1.055, 1.40, 0.70]})):
        comps = [comparison(x, sorted(v)[1], kind="concurrency", per_repeat=v) for x, v in by_load.items()]
        runs.append(measured_run(comps, [spec_cell(x, 0.0, 0.6, k, kind="concurrency") for x in by_load],
                                 servers(k, "ngram")))
    d = decide(w, runs=runs, options=NO_SIM)
    g = rule(d, "guard_viability")
    # band 8: k=3 clearly best; band 64: k=3's MAD penalty leaves k=1 ahead
    assert g.evidence["schedule"] == "1-8:3, 9-1024:1"
    assert "measured fixed-k arms" in (g.meaning or "")


def test_an_estimate_at_the_bucket_temperature_beats_a_measurement_at_another():
    w = workload([("chat", 1.0, 1.0)], typical=1, peak=2, method="ngram", k=3)
    est = profile([("all", 1.0, 0.4, None)], method="ngram")
    d = decide(w, profiles=[est], runs=[winning_run(temps=(0.0,))], options=NO_SIM)
    row = rule(d, "acceptance_vs_break_even")
    assert row.source == "estimated" and row.evidence["temperature"] == 1.0
    assert rule(d, "temperature_coverage").status == "fail"  # the load evidence is still only at T=0


def test_estimate_far_from_the_measured_acceptance_is_a_finding_and_the_measurement_decides():
    est = profile([("all", 0.0, 0.95, None)], method="ngram")
    d = decide(ngram_w(), profiles=[est], runs=[winning_run(acc=0.55)], options=NO_SIM)
    dis = rule(d, "acceptance_disagreement")
    assert dis.status == "fail" and dis.observed > 0.1
    assert rule(d, "acceptance_vs_break_even").observed == pytest.approx(0.55)
    near = profile([("all", 0.0, 0.69, None)], method="ngram")  # 0.69 i.i.d. -> 0.53 accepted/drafted at k=3
    assert rule(decide(ngram_w(), profiles=[near], runs=[winning_run(acc=0.55)], options=NO_SIM),
                "acceptance_disagreement").status == "pass"


def test_method_rule_prices_each_method_with_its_own_draft_cost():
    # the 3B draft accepts a little more than n-gram, but costs c ~ 0.5 per drafted token; n-gram ~ 0
    w = workload([("code", 1.0, 0.0)], method="draft_model", draft="meta-llama/Llama-3.2-3B-Instruct", k=4)
    ng = profile([("code", 0.0, 0.80, None)], method="ngram")
    dm = profile([("code", 0.0, 0.85, None)], method="draft_model", draft="meta-llama/Llama-3.2-3B-Instruct")
    m = rule(decide(w, profiles=[dm, ng], options=NO_SIM), "method_choice")
    assert m.status == "fail" and "code: ngram" in m.message


def test_the_crossover_is_set_against_the_peak():
    w = ngram_w(typical=1, peak=4)
    run = measured_run([comparison(x, s) for x, s in zip(LOADS, [1.5, 1.4, 1.1, 0.8])],
                       [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram"),
                       crossovers=[crossover("measured", 2.67, LOADS, [1.5, 1.4, 1.1, 0.8])])
    d = decide(w, runs=[run], options=NO_SIM)
    peak = rule(d, "load_peak")
    assert "crossover 2.67 req/s (measured), below the peak" in peak.message
    assert d.monitor.crossover_qps == pytest.approx(2.67) and d.monitor.crossover_source == "measured"
    assert d.verdict == "BORDERLINE"  # faster at the typical load, slower at the peak, no guard measured


def test_a_guard_the_deployed_vllm_cannot_run_is_not_viable():
    w = ngram_w(typical=1, peak=4)
    w = w.model_copy(update={"deployment": w.deployment.model_copy(update={"vllm_version": "0.20.0"})})
    fixed, guarded = fixed_and_guarded_ngram_runs()
    d = decide(w, runs=[fixed, guarded], options=NO_SIM)
    g = rule(d, "guard_viability")
    assert g.status == "fail" and "0.24.0" in g.message
    assert d.verdict == "BORDERLINE" and not d.config.speculative


def test_startup_memory_that_differs_from_the_plan_is_reported():
    run = winning_run()
    run.findings.append("STARTUP MEMORY DIFFERS FROM THE PLAN (speculative, beyond ±5%): KV cache tokens 100000 "
                        "logged vs 460960 planned")
    d = decide(ngram_w(), runs=[run], options=NO_SIM)
    row = rule(d, "plan_vs_startup_memory")
    assert row.status == "fail" and "--check-log" in row.meaning
    assert rule(decide(ngram_w(), runs=[winning_run()], options=NO_SIM), "plan_vs_startup_memory").status == "unknown"


def test_slo_target_at_the_peak_compares_both_arms():
    w = ngram_w().model_copy(update={"slo": ngram_w().slo.model_copy(update={"metric": "e2e", "p99_target": 2.0})})
    run = winning_run()
    for c in run.cells:
        c.e2e_p99_s = 2.5 if c.role == "baseline" else 1.6
    row = rule(decide(w, runs=[run], options=NO_SIM), "slo_target")
    assert row.status == "pass" and "only speculation meets it" in row.message
    for c in run.cells:
        c.e2e_p99_s = 1.5 if c.role == "baseline" else 2.4
    row = rule(decide(w, runs=[run], options=NO_SIM), "slo_target")
    assert row.status == "fail" and "speculation misses it while the baseline meets it" in row.message


def test_a_one_band_schedule_is_no_guard():
    sim = RunEvidence(run=simulated_run([comparison(x, 1.3, half=None) for x in LOADS]),
                      firmness="simulated_roofline", guard_schedule=[[1, 256, 3]], guard_speedups={2.0: 1.3})
    g = rule(decide(ngram_w(), runs=[sim], options=NO_SIM), "guard_viability")
    assert g.status == "pass" and "no guard needed" in g.message


def test_crossovers_are_compared_only_where_both_ran():
    from specwise.decide.rules_load import crossovers_disagree

    meas_above = crossover("measured", None, [2, 4, 8], [1.4, 1.3, 1.2], position="above_range")
    assert not crossovers_disagree(crossover("simulated", 30.8, [2, 4, 8, 16, 32], [1.5] * 5), meas_above, 0.25)
    assert crossovers_disagree(crossover("simulated", 5.0, [2, 4, 8], [1.5, 1.1, 0.9]), meas_above, 0.25)
    assert crossovers_disagree(crossover("simulated", 9.0, [4, 8, 16], [1.2, 1.1, 0.8]),
                               crossover("measured", 6.0, [4, 8, 16], [1.1, 0.9, 0.7]), 0.25)  # issue 11's example
    assert not crossovers_disagree(crossover("simulated", 6.5, [4, 8], [1.1, 0.9]),
                                   crossover("measured", 6.0, [4, 8], [1.1, 0.9]), 0.25)
    below = crossover("measured", None, [2, 4], [0.9, 0.8], position="below_range")
    assert crossovers_disagree(crossover("simulated", None, [1, 2, 4], [1.5] * 3, position="above_range"), below, 0.25)


def test_a_tie_in_a_hot_bucket_is_noise_even_when_the_median_bucket_wins():
    w = workload([("json_extraction", 0.5, 0.0), ("chat", 0.5, 1.0)], typical=1, peak=2, method="ngram", k=3)
    comps = [comparison(x, 1.4, temperature=0.0) for x in LOADS]
    comps += [comparison(x, 1.04, half=0.12, temperature=1.0) for x in LOADS]
    cells = [spec_cell(x, t, 0.6, 3) for x in LOADS for t in (0.0, 1.0)]
    d = decide(w, runs=[measured_run(comps, cells, servers(3, "ngram"))], options=NO_SIM)
    noise = rule(d, "noise")
    assert noise.status == "fail" and "(T=1)" in noise.message
    assert d.verdict == "BORDERLINE"


def test_p99_slower_only_counts_when_its_interval_is_below_one():
    w = ngram_w()
    noisy = measured_run([comparison(x, 1.3, p99=0.95, half=0.1) for x in LOADS],
                         [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram"))
    assert rule(decide(w, runs=[noisy], options=NO_SIM), "mixed_workload").status == "pass"
    clear = measured_run([comparison(x, 1.3, p99=0.8, half=0.05) for x in LOADS],
                         [spec_cell(x, 0.0, 0.6, 3) for x in LOADS], servers(3, "ngram"))
    assert rule(decide(w, runs=[clear], options=NO_SIM), "mixed_workload").status == "fail"


def test_measured_queueing_of_the_speculative_arm_fails_the_kv_rule():
    run = winning_run()
    for c in run.cells:
        if c.load == 2:
            c.num_requests_waiting_max = 7.0 if c.role == "speculative" else 0.0
            c.kv_cache_usage_max = 0.99 if c.role == "speculative" else 0.6
    kv = rule(decide(ngram_w(), runs=[run], options=NO_SIM), "kv_concurrency")
    assert kv.status == "fail" and kv.source == "measured" and kv.observed == 7.0
    assert rule(decide(ngram_w(), runs=[winning_run()], options=NO_SIM), "kv_concurrency").source == "estimated"


def test_a_simulation_inside_the_measured_interval_is_no_disagreement():
    sim = simulated_run([comparison(x, 1.34, half=None) for x in LOADS])
    meas = measured_run([comparison(x, 1.03, half=0.4) for x in LOADS], [spec_cell(x, 0.0, 0.6, 3) for x in LOADS],
                        servers(3, "ngram"))
    d = decide(ngram_w(), runs=[sim, meas], options=NO_SIM)
    assert rule(d, "evidence_disagreement").status == "pass"
    noise = rule(d, "noise")
    assert noise.evidence["repeats_needed"] == 30 and "--num-requests" in noise.meaning

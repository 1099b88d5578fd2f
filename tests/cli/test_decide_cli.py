"""`specwise decide` through the console entry point, on real `plan --json` and `simulate --out` files."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from specwise.schemas.decision import Decision

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "workload-profile.yaml"
TARGET, DRAFT = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"


def specwise(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "specwise", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stage_outputs(tmp_path_factory):
    """A real plan and a real (small) simulated sweep of the example profile's deployment."""
    d = tmp_path_factory.mktemp("stages")
    p = specwise("plan", "--target", TARGET, "--draft", DRAFT, "--gpu", "H100", "--max-model-len", "8192", "--json")
    assert p.returncode == 0, p.stderr
    (d / "plan.json").write_text(p.stdout)
    s = specwise("simulate", "--target", TARGET, "--draft", DRAFT, "--gpu", "H100", "--k", "4", "--qps", "1,2,6,9",
                 "--num-requests", "60", "--no-oracle", "--temperature-mix", "0.1:0.6,1.0:0.4",
                 "--out", str(d / "sim.json"))
    assert s.returncode == 0, s.stderr
    return d


def test_example_profile_with_plan_and_simulation_files(stage_outputs, tmp_path):
    out = tmp_path / "decision.json"
    p = specwise("decide", "--workload", str(EXAMPLE), str(stage_outputs / "plan.json"),
                 str(stage_outputs / "sim.json"), "-o", str(out))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("BORDERLINE")  # uncalibrated simulation never enables
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    d = Decision.model_validate_json(out.read_text())
    assert d.firmness == "simulated_roofline"
    kinds = {(e.kind, e.path) for e in d.evidence}
    assert ("plan", str(stage_outputs / "plan.json")) in kinds and ("run_result", str(stage_outputs / "sim.json")) in kinds
    guard = next(f for f in d.rules if f.code == "guard_viability")
    assert guard.source == "simulated" and "[" in guard.message  # the guard recommended in the v1 finding text
    bench = next(s for s in d.next_steps if "specwise bench" in s)
    argv = shlex.split(bench.split(": ", 1)[1])
    spec_cmd = argv[argv.index("--speculative-cmd") + 1]
    cfg = json.loads(shlex.split(spec_cmd)[shlex.split(spec_cmd).index("--speculative-config") + 1])
    assert cfg == {"method": "draft_model", "model": DRAFT, "num_speculative_tokens": 4}
    assert argv[argv.index("--qps") + 1] == "2,6,9" and argv[argv.index("--temperatures") + 1] == "0.1,1"


def test_json_output_is_a_decision_and_exit_code_zero_for_any_verdict(tmp_path):
    wl = yaml.safe_load(EXAMPLE.read_text())
    wl["deployment"].update(target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.1-8B-Instruct",
                            gpus=2)
    f = tmp_path / "w.json"
    f.write_text(json.dumps(wl))
    p = specwise("decide", "--workload", str(f), "--json")
    assert p.returncode == 0, p.stderr
    d = Decision.model_validate_json(p.stdout)
    assert d.verdict == "DOES_NOT_FIT" and d.monitor.k == 4


@pytest.mark.parametrize("content,msg", [
    ("categories: [}", "not valid YAML"),
    ("name: x\n", "invalid workload profile at categories"),
    ("categories: [{name: a, share: 1}]\nload: {typical: 5, peak: 1}\ndeployment: {target: x}\n", "below load.typical"),
])
def test_bad_workload_profiles_are_one_line_errors(tmp_path, content, msg):
    f = tmp_path / "w.yaml"
    f.write_text(content)
    p = specwise("decide", "--workload", str(f), "--no-simulate")
    assert p.returncode == 2
    assert msg in p.stderr and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_unrecognised_evidence_and_missing_workload_are_exit_2(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    p = specwise("decide", "--workload", str(EXAMPLE), str(junk))
    assert p.returncode == 2 and "not a plan, acceptance profile, estimate or run result" in p.stderr
    p = specwise("decide", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "not found" in p.stderr
    p = specwise("decide", "--no-simulate")
    assert p.returncode == 2 and "workload profile" in p.stderr


def test_the_decision_file_gives_monitor_this_pairs_thresholds(tmp_path):
    from specwise.monitor.thresholds import resolve_thresholds

    run_dir = ROOT / "tests" / "decide" / "fixtures" / "bench_serve_sim_ngram"
    out = tmp_path / "decision.json"
    p = specwise("decide", "-w", str(ROOT / "examples" / "workloads" / "summarisation-ngram.yaml"), str(run_dir),
                 "--out", str(out))
    assert p.returncode == 0, p.stderr
    d = Decision.model_validate_json(out.read_text())
    th = resolve_thresholds(out)
    assert th.source == "decision"
    assert th.break_even_acceptance == d.monitor.break_even_acceptance
    assert th.healthy_acceptance == d.monitor.healthy_acceptance > th.break_even_acceptance
    assert th.expected_acceptance == pytest.approx(0.68, abs=0.02)


def test_report_flag_writes_the_report_or_says_what_is_missing(tmp_path):
    import importlib.util

    run_dir = ROOT / "tests" / "decide" / "fixtures" / "bench_serve_sim_ngram"
    html = tmp_path / "report.html"
    p = specwise("decide", "-w", str(ROOT / "examples" / "workloads" / "summarisation-ngram.yaml"), str(run_dir),
                 "--report", str(html))
    if importlib.util.find_spec("specwise.report") is None:
        assert p.returncode == 2 and "--report needs the report stage" in p.stderr
    else:
        assert p.returncode == 0, p.stderr
        assert html.exists() and "ENABLE" in html.read_text()


def test_an_unknown_model_with_nothing_else_is_exit_2_but_measured_runs_still_decide(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("categories: [{name: summarization, share: 1}]\nload: {typical: 1, peak: 2}\n"
                 "deployment: {target: acme/unknown-model-7b, method: ngram, k: 3}\n")
    p = specwise("decide", "-w", str(f), "--no-simulate")
    assert p.returncode == 2 and "unknown model 'acme/unknown-model-7b'" in p.stderr
    p = specwise("decide", "-w", str(f), str(ROOT / "tests" / "decide" / "fixtures" / "bench_serve_sim_ngram"), "--json")
    assert p.returncode == 0, p.stderr
    d = Decision.model_validate_json(p.stdout)
    fit = next(r for r in d.rules if r.code == "plan_fits")
    assert fit.status == "unknown" and d.verdict == "ENABLE"  # measured at the production load and temperature


@pytest.mark.parametrize("args,msg", [(["--guard-tax", "5"], "--guard-tax: expected BATCH:TAX"),
                                      (["--guard-tax", "10:0.1,2:0.2"], "increasing"),
                                      (["--sim-requests", "5"], "--sim-requests must lie in [20, 5000]"),
                                      (["--guard-cudagraph-tax", "1.5"], "--guard-cudagraph-tax")])
def test_bad_options_are_one_line_errors(args, msg):
    p = specwise("decide", "-w", str(EXAMPLE), "--no-simulate", *args)
    assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_hostile_numbers_are_refused_in_one_line(tmp_path):
    for args, msg in ((["--guard-tax", "2:nan,189:0.2"], "--guard-tax"), (["--guard-tax", "2:0.1,inf:0.2"],
                      "--guard-tax"), (["--sim-requests", "1000000000"], "--sim-requests")):
        p = specwise("decide", "-w", str(EXAMPLE), "--no-simulate", *args)
        assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1
    f = tmp_path / "w.yaml"
    f.write_text("categories: [{name: a, share: 1}]\nload: {kind: concurrency, typical: 100000, peak: 900000}\n"
                 "deployment: {target: meta-llama/Llama-3.1-8B-Instruct, method: ngram, k: 3}\n")
    p = specwise("decide", "-w", str(f), "--json")
    assert p.returncode == 0, p.stderr
    d = Decision.model_validate_json(p.stdout)
    assert any("not simulated by decide" in e.description for e in d.evidence) and d.verdict == "BORDERLINE"
    f.write_text("categories: [{name: a, share: 1, temperature: .nan}]\nload: {typical: 1, peak: 2}\n"
                 "deployment: {target: meta-llama/Llama-3.1-8B-Instruct, method: ngram}\n")
    p = specwise("decide", "-w", str(f), "--no-simulate")
    assert p.returncode == 2 and "categories.0.temperature" in p.stderr

"""`specwise simulate` end to end through the console entry point."""

import json
import subprocess
import sys

import pytest

from specwise.simulate.acceptance import iid_alpha_for_length
from specwise.schemas.acceptance import mean_acceptance_length
from specwise.metrics.definitions import summarize_cell
from specwise.schemas.results import RequestRecord, RunResult


def run(*args):
    return subprocess.run([sys.executable, "-m", "specwise", "simulate", *args], capture_output=True, text=True,
                          timeout=300)


def cell(out, role, load):
    return next(c for c in out["cells"] if c["role"] == role and c["load"] == load)


def test_json_fields_for_a_small_sweep(tmp_path):
    # --seed 2: the mean acceptance length below is 80 requests' engine draws against the theoretical 2.19
    # (±0.1); over seeds 0-5 it spreads 2.07-2.20 (with either arrival definition, before and after
    # specwise.arrivals), so the seed is one whose draw is not at the edge of the tolerance.
    p = run("--target", "meta-llama/Llama-3.1-8B-Instruct", "--method", "eagle3", "--gpu", "H100", "--k", "3",
            "--acceptance-rates", "0.6,0.36,0.23", "--qps", "2,40", "--num-requests", "80", "--output-len", "128",
            "--seed", "2", "--json", "--out", str(tmp_path / "run.json"), "--records-out", str(tmp_path / "records.jsonl"))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["schema_version"] == 2 and out["source"] == "simulated"
    assert [c["load"] for c in out["comparisons"]] == [2.0, 40.0]
    assert [c["load_kind"] for c in out["comparisons"]] == ["qps", "qps"]
    run_result = RunResult.model_validate_json((tmp_path / "run.json").read_text())
    assert run_result.source == "simulated" and len(run_result.cells) == 4 and len(run_result.comparisons) == 2
    assert run_result.comparisons[0].speedup_e2e_p50.value == pytest.approx(
        out["comparisons"][0]["speedup_e2e_p50"]["value"])
    # the resolved config is written next to the results and repeats the run exactly
    config = tmp_path / "run.config.json"
    assert json.loads(config.read_text())["target"] == "meta-llama/Llama-3.1-8B-Instruct"
    again = run("--config", str(config), "--json")
    assert again.returncode == 0, again.stderr
    repeated = json.loads(again.stdout)
    assert repeated["inputs"]["simulate"] == out["inputs"]["simulate"]
    assert [c["load"] for c in repeated["comparisons"]] == [2.0, 40.0]
    # (the first run also recorded every request, which steps the engine without fast-forwarding)
    assert [c["speedup_e2e_p50"]["value"] for c in repeated["comparisons"]] == pytest.approx(
        [c["speedup_e2e_p50"]["value"] for c in out["comparisons"]], rel=0.05)
    records = [RequestRecord.model_validate_json(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 80 and {r.role for r in records} == {"baseline", "speculative"}
    spec = [r for r in records if r.role == "speculative" and r.qps == 2.0]
    again = summarize_cell(spec, role="speculative", source="simulated", qps=2.0, k=3)
    assert again.e2e_p50_s == pytest.approx(cell(out, "speculative", 2.0)["e2e_p50_s"], rel=1e-6)
    for load in (2.0, 40.0):
        for role in ("baseline", "speculative"):
            for f in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s",
                      "output_tokens_per_s"):
                assert cell(out, role, load)[f] > 0
    for comp in out["comparisons"]:
        assert comp["speedup_e2e_p50"]["value"] > 0 and comp["speedup_tpot_p50"]["value"] > 0
    assert out["crossovers"][0]["load"] == "qps"
    assert out["simulation"]["guard"]["num_speculative_tokens_per_batch_size"][0][0] == 1
    assert {s["role"] for s in out["servers"].values()} == {"baseline", "speculative"}
    assert out["inputs"]["acceptance"]["source"] == "assumed"
    # unconditional vLLM rates were converted to conditional alphas
    cond = out["inputs"]["acceptance"]["classes"][0]["conditional"]
    assert cond == pytest.approx([0.6, 0.6, 0.23 / 0.36])
    assert cell(out, "speculative", 2.0)["mean_acceptance_length_metrics"] == pytest.approx(1 + 0.6 + 0.36 + 0.23,
                                                                                          abs=0.1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--acceptance-rates", "0.5,0.7"], "cannot rise"),
        (["--acceptance-length", "9", "--k", "3"], "[1, 4]"),
        (["--qps", "a,b"], "--qps"),
        (["--target", "no-such-model"], "unknown model"),
        (["--method", "draft_model", "--target", "meta-llama/Llama-3.1-8B"], "needs --draft"),
        (["--prompt-len", "zipf:3"], "length distribution"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message):
    p = run(*args)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr


def test_acceptance_length_inverts_the_iid_formula():
    alpha = iid_alpha_for_length(2.25, 3)
    assert alpha == pytest.approx(0.62, abs=0.01)  # theory-and-calibration.md §1.6: tau 2.25 at k=3 -> 0.62
    assert mean_acceptance_length([alpha], 3) == pytest.approx(2.25, abs=1e-6)


def test_trace_replay_and_dataset(tmp_path):
    trace = tmp_path / "trace.jsonl"
    rows = [{"timestamp": 100 + 0.5 * i, "prompt_tokens": 200 + i, "output_tokens": 50} for i in range(41)]
    trace.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    p = run("--target", "meta-llama/Llama-3.1-8B-Instruct", "--method", "ngram", "--gpu", "H100",
            "--trace", str(trace), "--no-oracle", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [c["load"] for c in out["comparisons"]] == [2.0]  # the trace's native rate
    assert cell(out, "baseline", 2.0)["requests_ok"] == 41
    data = tmp_path / "lengths.csv"
    data.write_text("prompt_tokens,output_tokens\n100,20\n300,40\n")
    p = run("--target", "meta-llama/Llama-3.1-8B-Instruct", "--method", "ngram", "--dataset", str(data),
            "--qps", "4", "--num-requests", "30", "--no-oracle", "--k-sweep", "1,5", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["cells"][0]["requests_ok"] == 30
    ks = out["simulation"]["k_sweep"]
    assert [(r["load"], r["k"]) for r in ks] == [(4.0, 1), (4.0, 5)]
    assert all(r["speedup_e2e_p50"] > 0 for r in ks)


def test_closed_loop_concurrency_sweep():
    p = run("--target", "meta-llama/Llama-3.1-8B-Instruct", "--method", "eagle", "--acceptance-length", "2.25",
            "--k", "3", "--concurrency", "1,64", "--output-len", "200", "--no-oracle", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    # the load axis says closed loop on every cell and comparison (qps stays None: no offered rate)
    assert [(c["qps"], c["load_kind"], c["load"]) for c in out["comparisons"]] == [
        (None, "concurrency", 1.0), (None, "concurrency", 64.0)]
    assert all(c["load_kind"] == "concurrency" and c["load"] in (1.0, 64.0) for c in out["cells"])
    assert [c["load"] for c in out["crossovers"]] == ["concurrency"]
    low, high = out["comparisons"]
    assert low["throughput_ratio"] > high["throughput_ratio"] > 1.0  # shrinks with batch, as the 8B data
    assert cell(out, "baseline", 64.0)["mean_batch_size"] > 40
    bad = run("--concurrency", "4", "--qps", "2")
    assert bad.returncode == 2 and "either --concurrency" in bad.stderr


def test_guard_config_for_a_draft_model_names_the_draft():
    p = run("--qps", "1", "--num-requests", "40", "--json")
    assert p.returncode == 0, p.stderr
    cfg = json.loads(p.stdout)["simulation"]["guard"]["speculative_config"]
    assert cfg["method"] == "draft_model"
    assert cfg["model"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert cfg["num_speculative_tokens_per_batch_size"][0][0] == 1


def test_guard_on_an_old_vllm_is_a_finding_from_the_version_facts():
    p = run("--qps", "1", "--num-requests", "40", "--no-oracle", "--vllm-version", "0.20.0", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["simulation"]["guard"]["supported_by_vllm_version"] is False
    finding = next(f for f in out["findings"] if f["code"] == "guard_needs_newer_vllm")
    assert finding["severity"] == "warning" and finding["threshold"] == "0.24.0"


def test_terminal_tables_fit_80_columns_without_ellipses():
    p = subprocess.run([sys.executable, "-m", "specwise", "simulate", "--qps", "1,8", "--num-requests", "40",
                        "--no-oracle", "--k-sweep", "1,2"], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "COLUMNS": "80"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in p.stdout
    assert "Cells (simulated" in p.stdout and "Simulated crossover" in p.stdout and "left out for width 80" in p.stdout

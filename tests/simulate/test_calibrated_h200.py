"""Out of sample: the shipped H200 / vLLM 0.26 calibration (fitted on the HIGH-acceptance arm) predicts the
measured LOW-acceptance arm of the same runs within 15% (E2E P50 speedup, loads below saturation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specwise.cli.main import app

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "gpu_h200_vllm0.26" / "run"


def _measured(path: str, base_role: str = "baseline", spec_role: str = "speculative") -> dict[float, float]:
    cells = json.loads((RUN / path).read_text())["cells"]
    base = {c["qps"]: c["e2e_p50_s"] for c in cells if c["role"] == base_role}
    return {c["qps"]: base[c["qps"]] / c["e2e_p50_s"] for c in cells if c["role"] == spec_role}


@pytest.mark.parametrize("like_for_like", [True, False])
def test_low_acceptance_arm_predicted_within_15_percent(like_for_like):
    spec = _measured("bench_B_lfl_dlow.result.json")  # LOW arm vs the like-for-like baseline
    if not like_for_like:  # vs the default baseline of run A (same seed-0 requests and schedule)
        a = json.loads((RUN / "bench_A_base_dhigh.result.json").read_text())["cells"]
        b = json.loads((RUN / "bench_B_lfl_dlow.result.json").read_text())["cells"]
        base = {c["qps"]: c["e2e_p50_s"] for c in a if c["role"] == "baseline"}
        spec = {c["qps"]: base[c["qps"]] / c["e2e_p50_s"] for c in b if c["role"] == "speculative"}
    args = ["simulate", "--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B", "--gpu", "H200",
            "--vllm-version", "0.26.0", "--k", "4", "--acceptance-rates", "0.5,0.3,0.15,0.05", "--prompt-len", "33",
            "--output-len", "128", "--qps", "2,8,24", "--duration", "5", "--kv-capacity-tokens", "26208",
            "--no-oracle", "--json"] + (["--like-for-like"] if like_for_like else [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["inputs"]["deployment"]["speculative"]["calibration"] == "h200-vllm0.26-llama3.1-8b-llama3.2-1b"
    assert out["inputs"]["deployment"]["speculative"]["engine_mode"] == "v1_sync"
    assert out["inputs"]["deployment"]["baseline"]["engine_mode"] == ("v1_sync" if like_for_like else "v2_async")
    assert ("not_like_for_like" in {f["code"] for f in out["findings"]}) is not like_for_like
    comparisons = [c for c in out["comparisons"] if c["baseline_role"] == "baseline"]
    assert len(comparisons) == 3
    for c in comparisons:
        ratio = c["speedup_e2e_p50"]["value"] / spec[c["qps"]]
        assert 0.85 <= ratio <= 1.15, (c["qps"], c["speedup_e2e_p50"], spec[c["qps"]])

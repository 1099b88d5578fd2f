"""Two `specwise serve-sim` instances (baseline k=0, speculative k=3), launched by the bench itself.

serve-sim's acceptance is configured (unconditional per-position rates a_i, vLLM's metric meaning, no
per-request heterogeneity), so the bench must recover it from /metrics deltas and from per-request
metrics. Tolerances: ±0.06 per position and ±0.05 for the rate (about 600 drafted steps per cell give a
binomial standard error below 0.02). The sign of the speedup must follow acceptance: clearly faster at
high acceptance, clearly slower when a draft model is almost never accepted (its forward passes are
pure cost), each with a 95% CI that excludes 1.
"""

import importlib.util
import shlex
import sys

import pytest

from specwise.bench.runner import BenchConfig, run_bench

from .sse_server import _free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("specwise.cli.serve_sim") is None,
                       reason="serve-sim is not in this checkout yet"),
]

COMMON = ["--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct",
          "--gpu", "H100", "--tp", "1", "--time-scale", "1.0", "--heterogeneity", "0"]


def _sim(port: int, *args: str) -> str:
    return shlex.join([sys.executable, "-m", "specwise", "serve-sim", "--port", str(port), *COMMON, *args])


async def _ab(tmp_path, rates: str, **kw):
    cfg = BenchConfig(
        baseline_cmd=_sim(_free_port(), "--k", "0"),
        speculative_cmd=_sim(_free_port(), "--k", "3", "--acceptance-rates", rates,
                             "--per-request-spec-decode-metrics", "summary"),
        qps=[8.0], temperatures=[0.0], num_requests=30, max_tokens=48, warmup_requests=1, startup_timeout_s=120,
        **kw,
    )
    return await run_bench(cfg, str(tmp_path / "run"))


async def test_bench_recovers_configured_acceptance_and_speedup(tmp_path):
    a = [0.8, 0.6, 0.4]
    result = await _ab(tmp_path, "0.8,0.6,0.4", lossless="quick")
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.requests_ok == 30 and s.acceptance_semantics_metrics == "v1_accepted_prefix"
    assert s.per_position_acceptance_metrics == pytest.approx(a, abs=0.06)
    assert s.acceptance_rate_metrics == pytest.approx(sum(a) / 3, abs=0.05)
    assert s.mean_acceptance_length_metrics == pytest.approx(1 + sum(a), abs=0.15)
    assert s.acceptance_source_per_request == "server"
    assert s.acceptance_rate_per_request_p50 == pytest.approx(sum(a) / 3, abs=0.08)
    comp = result.comparisons[0]
    assert comp.speedup_tpot_p50.ci_low > 1.2
    assert result.servers["speculative"].k == 3 and result.servers["baseline"].engine_generation == "V1"
    assert result.lossless.passed is True


async def test_speculation_that_is_never_accepted_is_measured_as_slower(tmp_path):
    result = await _ab(tmp_path, "0.05,0.01,0.0", lossless="off")
    comp = result.comparisons[0]
    assert comp.speedup_tpot_p50.ci_high < 1.0 and comp.speedup_e2e_p50.ci_high < 1.0
    s = next(c for c in result.cells if c.role == "speculative")
    assert s.acceptance_rate_metrics == pytest.approx(0.02, abs=0.03)

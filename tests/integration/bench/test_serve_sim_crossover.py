"""bench recovers serve-sim's load crossover: measured on two live serve-sim endpoints vs `specwise simulate`.

The deployment is chosen so that speculation stops paying at a low load: Qwen3-8B (AWQ int4) on one A10G
with a Qwen3-0.6B draft model, k=3, acceptance 0.8 per position. Int4 weights make a step cheap to read,
so the A10G turns compute-bound at a small batch (the roofline ridge falls by the weight compression),
and speculation's k+1 verified tokens per sequence then cost more than they save (simulated speedup
~1.5x up to batch ~5, below 1 from batch ~15). Outputs are a fixed 48 tokens and prompts a fixed 100
tokens (serve-sim counts 4 characters per token), so `simulate` sees exactly the traffic bench sends.

Time: serve-sim runs at --time-scale 2 (2 wall seconds per simulated second: a simulated step of
~10-30 ms stays 20-60 ms of wall time, long against the Python server's and client's per-step work on
a loaded 2-core box). Bench rates are wall req/s, so simulated QPS = bench QPS x TIME_SCALE. Each cell
sends D_WALL seconds of Poisson arrivals; `simulate` runs the same rates (x TIME_SCALE) over the same
simulated window (D_WALL / TIME_SCALE), so both include the same start-up transient. bench launches the
two servers one after the other (as on a one-GPU box), so they never compete for the cores.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from specwise.bench.runner import BenchConfig, run_bench
from specwise.cli.main import app
from specwise.schemas.results import Crossover

from .sse_server import _free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("specwise.cli.serve_sim") is None,
                       reason="serve-sim is not in this checkout yet"),
]

TIME_SCALE = 2.0
# Simulated req/s. The crossover (~16-20 here) falls between 8 and 24 in every one of 60 simulate seeds
# (speedup 1.26-1.59 at 8, 0.62-0.86 at 24). A level within noise of the crossover (12 was tried) makes
# the interpolated crossover jump between segments from run to run (9-20 over seeds), so the levels are
# well below (4), below (8) and well above (24) it.
SIM_QPS = [4.0, 8.0, 24.0]
D_WALL = 6.0  # seconds of arrivals per cell: 12, 24 and 72 requests
PROMPT_TOKENS = 100
OUTPUT_TOKENS = 48
SIM_SEEDS = range(5)
# Measured vs simulated crossover, relative. Over 60 simulate seeds of this configuration the crossover
# lies within -12%/+10% of its median (1st-99th percentile): that is the spread of one run of these
# few requests, which bench's run is too. The reference is the median over SIM_SEEDS seeds (its own
# error a few %), and the rest of the margin covers client/server timing on a loaded 2-core machine
# (bench's schedule is fixed by its seed; four runs of this test measured 18.2-19.3 against 18.9).
TOLERANCE = 0.20
DEPLOYMENT = ["--target", "Qwen/Qwen3-8B", "--draft", "Qwen/Qwen3-0.6B", "--gpu", "A10G", "--tp", "1",
              "--quantization", "awq", "--heterogeneity", "0"]
SPECULATION = ["--k", "3", "--acceptance-rates", "0.8,0.64,0.512"]


def _serve_sim(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "specwise", "serve-sim", "--port", str(_free_port()), *DEPLOYMENT,
                       "--time-scale", f"{TIME_SCALE:g}", *args])


def _simulate(seed: int) -> Crossover:
    args = ["simulate", *DEPLOYMENT, *SPECULATION, "--prompt-len", str(PROMPT_TOKENS),
            "--output-len", str(OUTPUT_TOKENS), "--qps", ",".join(f"{q:g}" for q in SIM_QPS),
            "--duration", f"{D_WALL / TIME_SCALE:g}", "--no-oracle", "--seed", str(seed), "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    (cross,) = json.loads(out.stdout)["crossovers"]  # the same RunResult schema as the bench's
    return Crossover.model_validate(cross)


async def test_bench_measures_the_crossover_serve_sim_simulates(tmp_path):
    prompts = tmp_path / "fixed.jsonl"
    with prompts.open("w") as f:
        for i in range(40):
            # 4 * PROMPT_TOKENS characters = PROMPT_TOKENS tokens as serve-sim counts them
            f.write(json.dumps({"prompt": (f"request {i:02d} " * 40)[: 4 * PROMPT_TOKENS]}) + "\n")
    cfg = BenchConfig(
        baseline_cmd=_serve_sim("--k", "0"), speculative_cmd=_serve_sim(*SPECULATION),
        api="completions", workload=str(prompts), qps=[q / TIME_SCALE for q in SIM_QPS], temperatures=[0.0],
        duration_s=D_WALL, max_tokens=OUTPUT_TOKENS, warmup_requests=1, lossless="off", startup_timeout_s=60,
    )
    measured = await run_bench(cfg, str(tmp_path / "run"))
    assert all(c.requests_failed == 0 for c in measured.cells)

    (cross,) = measured.crossovers
    assert cross.source == "measured" and cross.temperature == 0.0 and cross.position == "within"
    low, high = measured.comparisons[0].speedup_e2e_p50, measured.comparisons[-1].speedup_e2e_p50
    assert low.ci_low > 1.15, "speculation must be clearly faster well below the crossover"
    assert high.ci_high < 0.95, "speculation must be clearly slower well above it"

    sims = [_simulate(seed) for seed in SIM_SEEDS]
    assert all(s.position == "within" and s.source == "simulated" for s in sims)
    simulated = float(np.median([s.value for s in sims]))
    measured_sim_units = cross.value * TIME_SCALE
    print(f"measured crossover {measured_sim_units:.2f} simulated req/s ({cross.value:.2f} wall req/s, "
          f"bracket {cross.bracket_low}-{cross.bracket_high} wall req/s, speedups "
          f"{[round(v, 3) for v in cross.speedups]}); simulated {simulated:.2f} req/s "
          f"(seeds: {[round(s.value, 2) for s in sims]}, speedups {[round(v, 3) for v in sims[0].speedups]})")
    assert measured_sim_units == pytest.approx(simulated, rel=TOLERANCE)
    # the measured 95% bracket (loads whose speedup CI lies wholly on one side of 1) holds the simulated one
    assert cross.bracket_low is not None and cross.bracket_high is not None
    assert cross.bracket_low * TIME_SCALE <= simulated <= cross.bracket_high * TIME_SCALE

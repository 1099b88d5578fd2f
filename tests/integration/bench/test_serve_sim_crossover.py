"""bench recovers serve-sim's load crossover: measured on two live serve-sim endpoints vs `specwise simulate`.

The deployment is chosen so that speculation stops paying at a low load: Qwen3-8B (AWQ int4) on one A10G
with a Qwen3-0.6B draft model, k=3, acceptance 0.8 per position. Int4 weights make a step cheap to read,
so the A10G turns compute-bound at a small batch (the roofline ridge falls by the weight compression),
and speculation's (k+1) verified tokens per sequence then cost more than they save (simulated speedup
~1.5x at batch 1-5, below 1 from batch ~15). Outputs are a fixed 48 tokens and prompts a fixed 100
tokens (serve-sim counts 4 characters per token), so `simulate` sees exactly the traffic bench sends.

Time: serve-sim runs at --time-scale 2 (2 wall seconds per simulated second; a simulated step of
~10-30 ms stays 20-60 ms of wall time, long against the Python server's and client's per-step work on
a loaded 2-core box). Bench rates are wall req/s, so simulated QPS = bench QPS x TIME_SCALE. Each cell
sends D_WALL seconds of Poisson arrivals; `simulate` runs the same rates (x TIME_SCALE) for the same
simulated window (D_WALL / TIME_SCALE), so both include the same start-up transient.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import time

import pytest

from specwise.bench.runner import BenchConfig, run_bench

from .sse_server import _free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("specwise.cli.serve_sim") is None,
                       reason="serve-sim is not in this checkout yet"),
]

TIME_SCALE = 2.0
SIM_QPS = [4.0, 12.0, 24.0]  # simulated req/s: well below, near and well above the simulated crossover
D_WALL = 8.0  # seconds of arrivals per cell
PROMPT_TOKENS = 100
OUTPUT_TOKENS = 48
DEPLOYMENT = ["--target", "Qwen/Qwen3-8B", "--draft", "Qwen/Qwen3-0.6B", "--gpu", "A10G", "--tp", "1",
              "--quantization", "awq", "--heterogeneity", "0"]
SPECULATION = ["--k", "3", "--acceptance-rates", "0.8,0.64,0.512"]


def _serve_sim(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "specwise", "serve-sim", "--port", str(_free_port()), *DEPLOYMENT,
                       "--time-scale", f"{TIME_SCALE:g}", *args])


def _simulate(seed: int = 0) -> dict:
    cmd = [sys.executable, "-m", "specwise", "simulate", *DEPLOYMENT, *SPECULATION,
           "--prompt-len", str(PROMPT_TOKENS), "--output-len", str(OUTPUT_TOKENS),
           "--qps", ",".join(f"{q:g}" for q in SIM_QPS), "--duration", f"{D_WALL / TIME_SCALE:g}",
           "--no-oracle", "--seed", str(seed), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


async def test_bench_measures_the_crossover_serve_sim_simulates(tmp_path):
    t0 = time.perf_counter()
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
    t_bench = time.perf_counter() - t0
    simulated = _simulate()
    print("bench", round(t_bench, 1), "s; total", round(time.perf_counter() - t0, 1), "s")
    for c in measured.comparisons:
        print("measured", c.qps * TIME_SCALE, c.speedup_e2e_p50)
    print("measured crossover", measured.crossovers)
    print("simulated", [(p["qps"], p["speedup_e2e_p50"]) for p in simulated["points"]], simulated["crossover"])

"""Calibration routines recover known constants."""

import numpy as np
import pytest

from specwise.errors import UserError
from specwise.perf.calibrate import StepSample, fit_from_baseline_cells, fit_from_run_result, fit_step_times, nnls
from specwise.perf.steptime import LLAMA31_8B_H100_FIT, StepTimeModel
from specwise.schemas.results import CellSummary, RunResult


def test_nnls_clips_negative_coefficients():
    a = np.column_stack([np.ones(5), np.arange(5.0)])
    y = 3.0 - 0.5 * np.arange(5.0)  # unconstrained slope is negative
    x = nnls(a, y)
    assert x[1] == 0.0 and x[0] == pytest.approx(np.mean(y))


def test_additive_fit_recovers_specdecode_bench_constants():
    rng = np.random.default_rng(0)
    samples = []
    for n in [1, 8, 16, 32, 64, 128, 256]:
        for ctx in [500, 2000]:
            kv = n * ctx
            t = LLAMA31_8B_H100_FIT.forward_time(n, kv) * (1 + rng.normal(0, 0.005))
            samples.append(StepSample(n_tokens=n, kv_tokens=kv, seconds=t))
    rep = fit_step_times(samples, form="additive")
    assert rep.model.t_fix_s == pytest.approx(5.886e-3, rel=0.03)
    assert rep.model.compute_s_per_token == pytest.approx(21.0e-6, rel=0.05)
    assert rep.model.kv_read_s_per_token == pytest.approx(39.3e-9, rel=0.05)
    assert rep.max_rel_error < 0.03


def test_hybrid_fit_finds_the_knee():
    truth = StepTimeModel(form="hybrid", t_fix_s=1e-3, weight_read_s=5e-3, compute_s_per_token=20e-6,
                          kv_read_s_per_token=30e-9)
    samples = [StepSample(n_tokens=n, kv_tokens=n * 1000, seconds=truth.forward_time(n, n * 1000))
               for n in [1, 16, 64, 128, 250, 400, 600, 1000]]
    rep = fit_step_times(samples, form="hybrid")
    assert rep.model.weight_read_s == pytest.approx(5e-3, rel=0.05)
    assert rep.model.compute_s_per_token == pytest.approx(20e-6, rel=0.02)
    assert rep.max_rel_error < 0.02


def test_fit_from_baseline_run_cells():
    cells = []
    for b in [1, 8, 32, 64, 128]:
        tpot = LLAMA31_8B_H100_FIT.step_time(b, b * 1000)
        cells.append(CellSummary(role="baseline", source="measured", qps=None, tpot_p50_s=tpot, mean_batch_size=b))
    rep = fit_from_baseline_cells(cells, mean_context_tokens=1000)
    run = RunResult(source="measured", tool_version="test", cells=cells)
    assert fit_from_run_result(run, 1000).model == rep.model
    assert rep.model.step_time(50, 50_000) == pytest.approx(LLAMA31_8B_H100_FIT.step_time(50, 50_000), rel=0.01)
    with pytest.raises(UserError):
        fit_from_baseline_cells(cells[:2], mean_context_tokens=1000)


def test_calibrate_module_cli_writes_a_model_simulate_accepts(tmp_path):
    import json
    import subprocess
    import sys

    steps = tmp_path / "steps.csv"
    lines = ["n_tokens,kv_tokens,seconds"]
    for n in [1, 8, 32, 64, 128, 256]:
        for ctx in [500, 3000]:
            lines.append(f"{n},{n * ctx},{LLAMA31_8B_H100_FIT.forward_time(n, n * ctx)}")
    steps.write_text("\n".join(lines) + "\n")
    p = subprocess.run([sys.executable, "-m", "specwise.perf.calibrate", str(steps)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    model = StepTimeModel.model_validate_json(p.stdout)
    assert model.compute_s_per_token == pytest.approx(21.0e-6, rel=0.02)
    path = tmp_path / "model.json"
    path.write_text(p.stdout)
    sim = subprocess.run([sys.executable, "-m", "specwise", "simulate", "--target", "meta-llama/Llama-3.1-8B-Instruct",
                          "--method", "ngram", "--qps", "2", "--num-requests", "20", "--no-oracle",
                          "--step-time-model", str(path), "--json"], capture_output=True, text=True)
    assert sim.returncode == 0, sim.stderr
    step_time = json.loads(sim.stdout)["inputs"]["step_time"]
    assert step_time["target"]["compute_s_per_token"] == pytest.approx(model.compute_s_per_token)
    assert step_time["calibration"] == f"--step-time-model {path}"
    bad = subprocess.run([sys.executable, "-m", "specwise.perf.calibrate", str(tmp_path / "missing.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr

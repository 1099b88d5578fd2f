"""The exact commands decide hands back: the ``specwise bench`` that settles a BORDERLINE, and calibration.

The bench command launches the baseline and the speculative server from the plan's emitter (so the arms differ
only in speculation, plus ``--like-for-like``), runs at the typical load, the peak and beyond it, at every
temperature of the workload, with the repeats the observed variance needs for the interval to exclude 1.
"""

from __future__ import annotations

import math
import shlex

from specwise.decide.adapter import launch_config
from specwise.schemas.plan import PlanResult
from specwise.schemas.workload import WorkloadProfile

BENCH_SUITES = ("chat", "code", "summarization", "json_extraction", "rag_qa")
MIN_REPEATS, MAX_REPEATS = 3, 30


def repeats_needed(speedup: float | None, ci_low: float | None, ci_high: float | None, repeats: int,
                   threshold: float = 1.0) -> int:
    """Repeats for the CI to exclude ``threshold``: the half-width shrinks as 1/sqrt(repeats).

    With a CI of half-width h0 from r0 repeats and a distance d = |speedup − threshold|, r = r0·(h0 / (0.9·d))².
    Without a CI (one simulated or unrepeated run) the minimum of 3 repeats gives bench a first variance.
    """
    if speedup is None or ci_low is None or ci_high is None:
        return MIN_REPEATS
    h0 = (ci_high - ci_low) / 2.0
    d = abs(speedup - threshold)
    if h0 <= 0:
        return MIN_REPEATS
    if d < 1e-3:
        return MAX_REPEATS
    r = math.ceil(max(1, repeats) * (h0 / (0.9 * d)) ** 2)
    return int(min(MAX_REPEATS, max(MIN_REPEATS, r)))


def _dq(text: str) -> str:
    """Double-quote a command that itself contains single-quoted JSON (more readable than shlex's '"'"')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'


def _workload_flag(workload: WorkloadProfile) -> str:
    parts = []
    for c in workload.categories:
        suite = next((s for s in BENCH_SUITES if s.replace("_", "") in c.name.lower().replace("_", "")
                      or c.name.lower().startswith(s[:4])), None)
        parts.append((suite or "chat", c.share))
    merged: dict[str, float] = {}
    for s, w in parts:
        merged[s] = merged.get(s, 0.0) + w
    if len(merged) == 1:
        return next(iter(merged))
    return ",".join(f"{s}:{w:g}" for s, w in merged.items())


def bench_command(workload: WorkloadProfile, plan: PlanResult | None, *, repeats: int = MIN_REPEATS,
                  temperatures: list[float] | None = None, out: str = "runs/decide-confirm",
                  guard: list[list[int]] | None = None, duration_s: float | None = None) -> str:
    """``specwise bench`` launching both arms at the production loads and temperatures (``duration_s``: seconds of
    arrivals per cell instead of bench's default request count, for a server whose step switches speeds)."""
    d = workload.deployment
    temps = temperatures if temperatures is not None else sorted({c.temperature for c in workload.categories})
    head = "specwise bench"
    args: list[str] = []
    if plan is not None:
        base = launch_config(plan, speculative=False, k=None, guard=None)
        spec = launch_config(plan, speculative=True, k=d.k, guard=guard)
        if not isinstance(base, str) and not isinstance(spec, str):
            head += (f" --baseline-cmd {_dq(base.vllm_command)} --speculative-cmd {_dq(spec.vllm_command)}"
                     " --like-for-like")
    if head == "specwise bench":
        args += ["--baseline", "http://BASELINE:8000", "--speculative", "http://SPECULATIVE:8000"]
    if workload.load.kind == "concurrency":
        args += ["--arrival", "closed_loop", "--concurrency", f"{math.ceil(workload.load.peak)}"]
    else:
        loads = sorted({workload.load.typical, workload.load.peak, round(workload.load.peak * 1.5, 3)})
        args += ["--qps", ",".join(f"{x:g}" for x in loads)]
    args += ["--temperatures", ",".join(f"{t:g}" for t in temps),
             "--workload", _workload_flag(workload),
             "--production-temperature", f"{workload.median_temperature():g}",
             "--repeats", str(repeats), "--gpu", d.gpu, "--out", out]
    if duration_s is not None and workload.load.kind != "concurrency":
        args[-4:-4] = ["--duration", f"{duration_s:g}"]
    top_p = {c.top_p for c in workload.categories}
    if len(top_p) == 1 and next(iter(top_p)) < 1.0:
        args += ["--top-p", f"{next(iter(top_p)):g}"]
    return head + " " + shlex.join(args)


def calibrate_command(run_path: str | None, mean_context: float) -> str:
    """How to replace the roofline with the step time measured on this GPU (perf.calibrate's baseline-run fit)."""
    where = run_path or "RUN_DIR"
    return ("python -c \"from specwise.perf.calibrate import fit_from_run_result; "
            "from specwise.decide.evidence import load_evidence; "
            f"print(fit_from_run_result(load_evidence(['{where}']).runs[0].run, {mean_context:.0f}).model"
            ".model_dump_json())\" > step-time.json; then `specwise simulate --step-time-model step-time.json` "
            "and decide again")

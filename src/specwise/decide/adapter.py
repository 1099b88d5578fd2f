"""The one place decide touches other stages: plan, simulate, perf, and the RunResult schema's versions.

Everything decide needs from ``specwise.plan`` / ``specwise.simulate`` (running them for a workload profile,
pricing the pair's step time) and every read of a :class:`RunResult` whose shape differs between schema
versions (v1: ``findings: list[str]``, ``config: dict``; v2: ``findings: list[Finding]``, typed ``inputs``, a
``simulation`` block naming the step-time calibration) goes through here, so the rules see one shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from specwise.errors import UserError
from specwise.schemas.base import Source
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.findings import Finding
from specwise.schemas.plan import MemoryBudget, PlanRequest, PlanResult
from specwise.schemas.results import RunResult
from specwise.schemas.workload import WorkloadProfile

# ---- RunResult, v1 and v2 -------------------------------------------------------------------------------


def parse_run(data: dict[str, Any]) -> RunResult:
    """A RunResult from JSON data of either schema version (the installed model decides what it accepts).

    When the installed model rejects the file, the fields it lacks are dropped and v2 findings become their
    messages (v2 ``inputs`` -> v1 ``config``); if that still does not validate, the original error stands.
    """
    try:  # schema v2 ships the one reader of both versions (upgrades a v1 file's config, servers, findings)
        from specwise.schemas.run_io import run_result_from_dict
    except ImportError:
        run_result_from_dict = None
    if run_result_from_dict is not None:
        return run_result_from_dict(data)
    try:
        return RunResult.model_validate(data)
    except ValueError as first:
        lenient = dict(data)
        lenient["findings"] = [f.get("message", str(f)) if isinstance(f, dict) else str(f)
                               for f in lenient.get("findings") or []]
        if "inputs" in lenient and "config" not in lenient and "config" in RunResult.model_fields:
            lenient["config"] = lenient.pop("inputs")
        lenient = {k: v for k, v in lenient.items() if k in RunResult.model_fields}
        lenient.pop("schema_version", None)
        try:
            return RunResult.model_validate(lenient)
        except ValueError:
            raise first from None


def run_findings(run: RunResult) -> list[Finding]:
    """The run's findings as :class:`Finding` (v1 strings become info findings with code 'run_note')."""
    out = []
    for f in getattr(run, "findings", []) or []:
        if isinstance(f, Finding):
            out.append(f)
        elif isinstance(f, str):
            out.append(Finding(code="run_note", message=f))
        elif hasattr(f, "message"):
            out.append(Finding(code=getattr(f, "code", "run_note"), message=f.message))
    return out


def run_inputs(run: RunResult) -> dict[str, Any]:
    """The inputs that produced the run (v1 ``config``, v2 ``inputs``), as plain data."""
    for name in ("inputs", "config"):
        value = getattr(run, name, None)
        if value:
            return value.model_dump(mode="json") if hasattr(value, "model_dump") else dict(value)
    return {}


def _calibration_name(sim: dict[str, Any]) -> str | None:
    name = sim.get("calibration") or sim.get("calibration_name")
    if isinstance(name, dict):
        name = name.get("name") or name.get("label")
    if name and str(name).lower() not in ("roofline", "none", "default"):
        return str(name)
    return None


def calibration_from_data(data: dict[str, Any]) -> str | None:
    """The calibration named in a v2 file's ``simulation`` block (read before a v1 model drops the block)."""
    sim = data.get("simulation")
    return _calibration_name(sim) if isinstance(sim, dict) else None


def run_calibration(run: RunResult) -> str | None:
    """Name of the step-time calibration a simulated run used; None = roofline defaults (uncalibrated)."""
    sim = getattr(run, "simulation", None)
    if sim is not None:
        name = _calibration_name(sim.model_dump(mode="json") if hasattr(sim, "model_dump") else dict(sim))
        if name:
            return name
    inputs = run_inputs(run)
    step = inputs.get("step_time")
    if isinstance(step, dict) and step.get("calibration"):
        # v2: "roofline ..." when uncalibrated, else the calibration / step-time file used
        text = str(step["calibration"])
        return None if text.lower().startswith("roofline") else text
    cal = inputs.get("calibration")
    if isinstance(cal, dict):
        cal = cal.get("name")
    if cal:
        return str(cal)
    stm = inputs.get("step_time_model")
    if isinstance(stm, dict) and stm.get("source") == "measured":
        return stm.get("label") or "measured step-time model"
    for info in (inputs.get("speculative") or {}, inputs.get("baseline") or {}):
        if isinstance(info, dict) and info.get("step_time_model"):
            return str(info["step_time_model"])
    return None


GUARD_RE = re.compile(r"num_speculative_tokens_per_batch_size\s*=\s*(\[\[.*\]\])")


def run_guard_schedule(run: RunResult, raw: dict[str, Any] | None = None) -> list[list[int]] | None:
    """The guard a simulated run recommends (v2: simulation block, also from ``raw`` file data when the installed
    model is v1; v1: the finding text)."""
    if run.source not in ("simulated", Source.simulated):
        return None
    sim = getattr(run, "simulation", None)
    if sim is None and raw is not None and isinstance(raw.get("simulation"), dict):
        sim = raw["simulation"]
    if sim is not None:
        data = sim.model_dump(mode="json") if hasattr(sim, "model_dump") else dict(sim)
        guard = data.get("guard") or {}
        sched = guard.get("num_speculative_tokens_per_batch_size") if isinstance(guard, dict) else None
        if sched:
            return [list(map(int, r)) for r in sched]
    for f in run_findings(run):
        m = GUARD_RE.search(f.message)
        if m:
            try:
                return [list(map(int, r)) for r in json.loads(m.group(1))]
            except (ValueError, TypeError):
                return None
    return None


def server(run: RunResult, role: str) -> dict[str, Any] | None:
    """One arm's server description as plain data (v1: a dict; v2: a ServerInfo model)."""
    info = (getattr(run, "servers", {}) or {}).get(role)
    if info is None:
        return None
    return info.model_dump(mode="json") if hasattr(info, "model_dump") else dict(info)


def speculative_config(run: RunResult) -> dict[str, Any]:
    spec = server(run, "speculative") or {}
    cfg = spec.get("speculative_config")
    return cfg if isinstance(cfg, dict) else {}


def run_guard_points(run: RunResult) -> tuple[dict[float, float | None], dict[float, float | None]]:
    """v2 simulated runs: the guard policy's speedup and mean batch per load ({} for v1 files)."""
    sim = getattr(run, "simulation", None)
    speedups: dict[float, float | None] = {}
    batches: dict[float, float | None] = {}
    if sim is None:
        return speedups, batches
    data = sim.model_dump(mode="json") if hasattr(sim, "model_dump") else dict(sim)
    for p in data.get("policies") or []:
        if p.get("policy") == "guard" and p.get("load") is not None:
            speedups[float(p["load"])] = p.get("speedup_e2e_p50")
            batches[float(p["load"])] = p.get("mean_batch_size")
    return speedups, batches


def settings_differ(run: RunResult) -> list[str]:
    """Engine settings that differ between the arms besides speculation (bench's own comparison)."""
    from specwise.bench.servers import ServerInfo, compare_settings

    base, spec = server(run, "baseline"), server(run, "speculative")
    if base is None or spec is None:
        return []
    try:
        b, s = ServerInfo.model_validate(base), ServerInfo.model_validate(spec)
    except ValueError:
        return []
    return compare_settings(b, s, include_kv=False)


def server_k(run: RunResult) -> int | None:
    spec = server(run, "speculative") or {}
    if spec.get("k"):
        return int(spec["k"])
    cfg = speculative_config(run)
    if cfg.get("num_speculative_tokens"):
        return int(cfg["num_speculative_tokens"])
    k = run_inputs(run).get("k")
    return int(k) if isinstance(k, (int, float)) else None


# ---- plan -----------------------------------------------------------------------------------------------


def plan_request(workload: WorkloadProfile, **change: Any) -> PlanRequest:
    d = workload.deployment
    context = int(workload.prompt_tokens.mean + workload.output_tokens.mean)
    req = PlanRequest(target=d.target, draft=d.draft if d.method != "ngram" else None, method=d.method,
                      gpu=d.gpu, gpus=d.gpus, tp=d.tp, target_quant=d.target_quant, draft_quant=d.draft_quant,
                      max_model_len=d.max_model_len, context=context, num_speculative_tokens=d.k,
                      vllm_version=d.vllm_version)
    return req.model_copy(update=change) if change else req


def plan_command(workload: WorkloadProfile) -> str:
    """The ``specwise plan`` command that reproduces :func:`run_plan`."""
    import shlex

    r = plan_request(workload)
    args = ["specwise", "plan", "--target", r.target]
    for flag, value in (("--draft", r.draft), ("--method", r.method), ("--gpu", r.gpu), ("--gpus", r.gpus),
                        ("--tp", r.tp), ("--target-quant", r.target_quant), ("--draft-quant", r.draft_quant),
                        ("--max-model-len", r.max_model_len), ("--context", r.context),
                        ("--num-speculative-tokens", r.num_speculative_tokens), ("--vllm-version", r.vllm_version)):
        if value is not None:
            args += [flag, str(value.value if hasattr(value, "value") else value)]
    return shlex.join(args)


def run_plan(workload: WorkloadProfile) -> PlanResult:
    from specwise.plan.planner import make_plan

    try:
        return make_plan(plan_request(workload))
    except UserError as exc:
        raise UserError(f"plan for the workload's deployment failed: {exc}") from None


def plan_variant(plan: PlanResult, change: dict[str, Any]) -> MemoryBudget | None:
    """The speculative budget of the same plan with ``change`` applied (e.g. an FP8 target); None if invalid."""
    from specwise.plan.memory import plan_memory

    try:
        mem = plan_memory(plan.request.model_copy(update=change), suggest=False)
    except (UserError, ValueError):
        return None
    return mem.speculative or mem.baseline


def launch_config(plan: PlanResult, *, speculative: bool, k: int | None,
                  guard: list[list[int]] | None):
    """The plan's emitter for the plan's vLLM version with k and guard filled in (None on emitter error)."""
    from specwise.plan.config import emit_launch_config

    s = plan.memory.settings
    if not speculative:
        s = s.model_copy(update={"method": None})
    elif k is not None:
        s = s.model_copy(update={"num_speculative_tokens": k})
    try:
        return emit_launch_config(s, plan.request.target, plan.request.draft if speculative else None,
                                  guard if speculative else None)
    except (UserError, ValueError) as exc:
        return str(exc)


# ---- simulate and perf ----------------------------------------------------------------------------------


def default_profile(workload: WorkloadProfile) -> AcceptanceProfile:
    """The method's assumed acceptance (simulate's default), labelled assumed."""
    try:  # RunResult v2 moved it into the simulate stage
        from specwise.simulate.acceptance import method_default_acceptance
    except ImportError:
        from specwise.cli.simulate import method_default_acceptance

    d = workload.deployment
    return method_default_acceptance(d.method, d.target, d.draft)


def run_step_time_model(run: RunResult):
    """The target StepTimeModel a simulated run priced its steps with (v2 inputs.step_time.target, v1
    config.step_time_model); None when absent or unreadable."""
    from specwise.perf.steptime import StepTimeModel

    inputs = run_inputs(run)
    data = (inputs.get("step_time") or {}).get("target") if isinstance(inputs.get("step_time"), dict) else None
    data = data or inputs.get("step_time_model")
    if not isinstance(data, dict) or not data:
        return None
    try:
        return StepTimeModel.model_validate(data)
    except ValueError:
        return None


@dataclass
class PairCost:
    """The pair's step-time model and draft cost (specwise.perf, as simulate builds them)."""

    target: Any  # StepTimeModel
    draft: Any  # DraftCost
    cost_ratio_batch1: float | None
    description: str


def pair_cost(workload: WorkloadProfile) -> PairCost | None:
    """Step-time model + draft cost of the workload's deployment; None when a model is unknown."""
    from specwise.simulate.defaults import build_deployment

    d = workload.deployment
    try:
        dep, info = build_deployment(d.target, d.gpu, d.tp or d.gpus, method=d.method, draft_name=d.draft,
                                     quant=d.target_quant, kv_capacity_tokens=1_000_000, k=d.k)
    except (UserError, ValueError, KeyError):
        return None
    return PairCost(target=dep.target, draft=dep.draft, cost_ratio_batch1=info.get("cost_ratio"),
                    description=str(info.get("cost_ratio_basis") or "specwise.perf step-time model"))


@dataclass
class SimulatedEvidence:
    """decide's own simulation: the RunResult plus the guard the sweep simulated."""

    run: RunResult
    guard_schedule: list[list[int]] | None = None
    guard_speedups: dict[float, float | None] = field(default_factory=dict)
    guard_batches: dict[float, float | None] = field(default_factory=dict)
    command: str = ""


def sim_loads(workload: WorkloadProfile) -> list[float]:
    lo, hi = workload.load.typical, workload.load.peak
    pts = {lo / 2, lo, hi, hi * 1.5}
    if workload.load.kind == "concurrency":
        pts = {max(1, round(p)) for p in pts}
    return sorted(pts)


def run_simulation(workload: WorkloadProfile, profile: AcceptanceProfile, *, num_requests: int = 120,
                   seed: int = 0) -> SimulatedEvidence:
    """A short simulate sweep of the workload (typical/2, typical, peak, 1.5x peak) without the oracle."""
    from specwise.simulate import sweep
    from specwise.simulate.defaults import build_deployment
    from specwise.simulate.workload import ArrivalSpec, LengthDist, RequestClass, WorkloadSpec

    d = workload.deployment
    tp = d.tp or d.gpus
    common = dict(method=d.method, draft_name=d.draft, quant=d.target_quant, vllm_version=d.vllm_version, k=d.k)
    try:
        base, base_info = build_deployment(d.target, d.gpu, tp, speculative=False, **common)
        spec, spec_info = build_deployment(d.target, d.gpu, tp, acceptance=profile, speculative=True, **common)
    except (UserError, ValueError, KeyError) as exc:
        raise UserError(f"cannot simulate the workload's deployment: {exc}") from None

    def dist(ld) -> LengthDist:
        return LengthDist(kind="lognormal", mean=ld.mean, cv=ld.cv, high=ld.max)

    classes = [RequestClass(category=c.name, temperature=c.temperature, weight=c.share)
               for c in workload.categories]
    loads = sim_loads(workload)
    closed = workload.load.kind == "concurrency"
    wl = WorkloadSpec(arrival=ArrivalSpec(kind="poisson", qps=1.0 if closed else loads[0]),
                      prompt_len=dist(workload.prompt_tokens), output_len=dist(workload.output_tokens),
                      classes=classes, num_requests=num_requests)
    sweep_args = dict(k=d.k, qps_list=[] if closed else loads, workload=wl, method=d.method, seed=seed,
                      with_oracle=False, concurrency_list=[int(x) for x in loads] if closed else None)
    result = sweep.run_sweep(base, spec, **sweep_args)
    guard_schedule: list[list[int]] | None = None
    speedups: dict[float, float | None] = {}
    batches: dict[float, float | None] = {}
    if isinstance(result, RunResult):  # schema v2: run_sweep returns the RunResult with a simulation block
        run = result
        guard_schedule = run_guard_schedule(run)
        speedups, batches = run_guard_points(run)
    else:
        result.inputs = {"baseline": base_info, "speculative": spec_info, "k": d.k, "decided_by": "specwise decide",
                         "acceptance": {"source": profile.source, "notes": profile.notes},
                         "step_time_model": spec.target.model_dump(mode="json"), "seed": seed}
        run = sweep.to_run_result(result)  # v1: run_sweep returned a SweepResult
        if closed:
            # v1's to_run_result leaves closed-loop comparisons and cells without their load: put it back
            conc = [float(p.concurrency or 0) for p in result.points]
            run.comparisons = [c.model_copy(update={"load_kind": "concurrency", "load": x})
                               for c, x in zip(run.comparisons, conc)]
            run.cells = [c.model_copy(update={"load_kind": "concurrency", "load": conc[i // 2]})
                         for i, c in enumerate(run.cells)]
        if result.guard is not None:
            guard_schedule = result.guard.num_speculative_tokens_per_batch_size
            for p in result.points:
                load = float(p.qps if p.qps is not None else p.concurrency or 0)
                speedups[load] = p.guard_speedup_e2e_p50
                batches[load] = p.guard.mean_batch_size if p.guard else None
    flag = "--concurrency" if closed else "--qps"
    mix = ",".join(f"{c.temperature:g}:{c.share:g}" for c in workload.categories)
    cmd = (f"specwise simulate --target {d.target} " + (f"--draft {d.draft} " if d.draft else "")
           + f"--method {d.method} --gpu {d.gpu} --tp {tp} --k {d.k} {flag} "
           + ",".join(f"{x:g}" for x in loads) + f" --temperature-mix {mix} --num-requests {num_requests} "
           + "--no-oracle")
    return SimulatedEvidence(run=run, guard_schedule=guard_schedule, guard_speedups=speedups,
                             guard_batches=batches, command=cmd)

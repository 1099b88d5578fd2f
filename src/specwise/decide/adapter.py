"""The one place decide touches other stages: plan, simulate, perf, and how a RunResult is read.

Everything decide needs from ``specwise.plan`` / ``specwise.simulate`` (running them for a workload profile,
pricing the pair's step time) and every read of a :class:`RunResult` beyond its plain fields (the calibration in
``inputs.step_time``, the guard in the ``simulation`` block or a version-1 file's finding, servers, k) goes
through here, so the rules see one shape. Files of either schema version are read with ``schemas.run_io``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from specwise.errors import UserError
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding
from specwise.schemas.plan import MemoryBudget, PlanRequest, PlanResult
from specwise.schemas.results import (
    DeploymentInputs,
    RunInputs,
    RunResult,
    StepTimeInputs,
    TemperatureShare,
    WorkloadInputs,
)
from specwise.schemas.workload import WorkloadProfile

# ---- RunResult ------------------------------------------------------------------------------------------


def parse_run(data: dict[str, Any], where: str = "run result") -> RunResult:
    """A RunResult from JSON data of either schema version (``schemas.run_io`` upgrades version 1)."""
    from specwise.schemas.run_io import run_result_from_dict

    return run_result_from_dict(data, where=where)


def run_findings(run: RunResult) -> list[Finding]:
    """The run's findings; a sentence added in memory (not through the schema) becomes a 'legacy' finding."""
    from specwise.schemas.results import legacy_finding

    return [f if isinstance(f, Finding) else legacy_finding(str(f)) for f in run.findings]


def run_inputs(run: RunResult) -> dict[str, Any]:
    """The inputs that produced the run, as plain data."""
    return run.inputs.model_dump(mode="json")


def run_calibration(run: RunResult) -> str | None:
    """The step-time calibration a simulated run used (its ``--step-time-model``); None = the roofline defaults."""
    step = run.inputs.step_time
    if step is None or not step.calibration or step.calibration.lower().startswith("roofline"):
        return None
    return step.calibration


GUARD_RE = re.compile(r"num_speculative_tokens_per_batch_size\s*=\s*(\[\[.*\]\])")


def run_guard_schedule(run: RunResult) -> list[list[int]] | None:
    """The guard a simulated run recommends: its ``simulation`` block, or a version-1 file's finding sentence."""
    if run.source not in ("simulated", Source.simulated):
        return None
    if run.simulation is not None and run.simulation.guard is not None:
        return [list(map(int, r)) for r in run.simulation.guard.num_speculative_tokens_per_batch_size]
    for f in run_findings(run):
        m = GUARD_RE.search(f.message)
        if m:
            try:
                return [list(map(int, r)) for r in json.loads(m.group(1))]
            except (ValueError, TypeError):
                return None
    return None


def server(run: RunResult, role: str) -> dict[str, Any] | None:
    """One arm's ServerInfo as plain data (None when the run has no such arm)."""
    info = run.servers.get(role)
    return info.model_dump(mode="json") if info is not None else None


def speculative_config(run: RunResult) -> dict[str, Any]:
    spec = server(run, "speculative") or {}
    cfg = spec.get("speculative_config")
    return cfg if isinstance(cfg, dict) else {}


def run_guard_points(run: RunResult) -> tuple[dict[float, float | None], dict[float, float | None]]:
    """Simulated runs: the guard policy's speedup and mean running batch per load ({} without a simulation block)."""
    speedups: dict[float, float | None] = {}
    batches: dict[float, float | None] = {}
    for p in run.simulation.policies if run.simulation is not None else []:
        if p.policy == "guard" and p.load is not None:
            speedups[float(p.load)] = p.speedup_e2e_p50
            batches[float(p.load)] = p.mean_batch_size
    return speedups, batches


def settings_differ(run: RunResult) -> list[str]:
    """Engine settings that differ between the arms besides speculation (bench's own comparison)."""
    from specwise.bench.servers import compare_settings

    base, spec = run.servers.get("baseline"), run.servers.get("speculative")
    if base is None or spec is None:
        return []
    return compare_settings(base, spec, include_kv=False)


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
    from specwise.simulate.acceptance import method_default_acceptance

    d = workload.deployment
    return method_default_acceptance(d.method, d.target, d.draft)


def run_step_time_model(run: RunResult):
    """The target StepTimeModel a simulated run priced its steps with (``inputs.step_time.target``), or None."""
    from specwise.perf.steptime import StepTimeModel

    step = run.inputs.step_time
    if step is None or not step.target:
        return None
    try:
        return StepTimeModel.model_validate(step.target)
    except ValueError:
        return None


@dataclass
class PairCost:
    """The pair's step-time model and draft cost (specwise.perf, as simulate builds them)."""

    target: Any  # StepTimeModel
    draft: Any  # DraftCost
    cost_ratio_batch1: float | None
    description: str


def calibrate(workload: WorkloadProfile, base, spec, base_info: dict, spec_info: dict,
              host_class: str | None = None):
    """Simulate's choice of constants for this deployment: a catalog calibration measured on this GPU, vLLM version
    and model shapes (each arm in the engine mode the version runs it in), else the roofline. Returns
    (baseline deployment, speculative deployment, CalibrationChoice)."""
    from specwise.catalog.models import get_model
    from specwise.perf.calibration import apply_calibration

    d = workload.deployment
    base_t, spec_t, spec_d, choice = apply_calibration(
        base.target, spec.target, spec.draft, requested=None, gpu=base_info["gpu"], vllm_version=d.vllm_version,
        target=get_model(d.target)[0], draft=get_model(d.draft)[0] if d.draft and d.method != "ngram" else None,
        method=d.method, host_class=host_class)
    for info, mode in ((base_info, choice.baseline_mode), (spec_info, choice.speculative_mode)):
        info["calibration"], info["engine_mode"] = choice.name, mode
    return (base.model_copy(update={"target": base_t}),
            spec.model_copy(update={"target": spec_t, "draft": spec_d}), choice)


def calibration_text(choice) -> str:
    """What the constants are, as ``inputs.step_time.calibration`` records it (starts 'roofline' when uncalibrated)."""
    modes = (f"; engine modes: baseline {choice.baseline_mode}, speculative {choice.speculative_mode}"
             if choice.baseline_mode else "")
    return "; ".join([f"{choice.label} ({choice.reason}){modes}",
                      *(f"mode switch paid by the speculative server: {m}" for m in choice.mode_switches)])


def pair_cost(workload: WorkloadProfile) -> PairCost | None:
    """Step-time model + draft cost of the workload's deployment (calibrated where simulate would be); None when
    a model is unknown."""
    from specwise.simulate.defaults import build_deployment

    d = workload.deployment
    common = dict(method=d.method, draft_name=d.draft, quant=d.target_quant, kv_capacity_tokens=1_000_000, k=d.k,
                  vllm_version=d.vllm_version)
    try:
        base, base_info = build_deployment(d.target, d.gpu, d.tp or d.gpus, speculative=False, **common)
        dep, info = build_deployment(d.target, d.gpu, d.tp or d.gpus, **common)
        _, dep, choice = calibrate(workload, base, dep, base_info, info)
    except (UserError, ValueError, KeyError):
        return None
    return PairCost(target=dep.target, draft=dep.draft, cost_ratio_batch1=info.get("cost_ratio"),
                    description=calibration_text(choice))


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


# decide's own quick sweep stays within what runs in seconds: longer or larger, run `specwise simulate` yourself
SIM_MAX_TOKENS_PER_REQUEST = 131_072


def simulation_refused(workload: WorkloadProfile) -> str | None:
    """Why decide will not simulate this profile itself (None: it will)."""
    from specwise.schemas.limits import MAX_CONCURRENCY

    if workload.load.kind == "concurrency" and max(sim_loads(workload)) > MAX_CONCURRENCY:
        return f"1.5x the peak concurrency is above simulate's limit of {MAX_CONCURRENCY}"
    if workload.prompt_tokens.mean + workload.output_tokens.mean > SIM_MAX_TOKENS_PER_REQUEST:
        return f"requests average over {SIM_MAX_TOKENS_PER_REQUEST:,} tokens"
    return None


def host_classes(run: RunResult) -> list[str]:
    """Host classes of the calibration a simulated draft_model run used, its default (what prices a run without
    ``--calibration-host``) first; none for other methods or the roofline."""
    from specwise.perf.calibration import get_calibration

    spec = (run.inputs.deployment or {}).get("speculative") if run.inputs else None
    name = spec.calibration if spec is not None else None
    if not name or not spec.method or spec.method != "draft_model":
        return []
    return get_calibration(name).host_class_names()


def run_simulation(workload: WorkloadProfile, profile: AcceptanceProfile, *, num_requests: int = 120,
                   seed: int = 0, host_class: str | None = None) -> SimulatedEvidence:
    """A short simulate sweep of the workload (typical/2, typical, peak, 1.5x peak) without the oracle;
    ``host_class``: price the draft pass of that host class of the matching calibration."""
    from specwise.simulate import sweep
    from specwise.simulate.defaults import build_deployment
    from specwise.simulate.workload import ArrivalSpec, LengthDist, RequestClass, WorkloadSpec

    d = workload.deployment
    tp = d.tp or d.gpus
    common = dict(method=d.method, draft_name=d.draft, quant=d.target_quant, vllm_version=d.vllm_version, k=d.k)
    try:
        base, base_info = build_deployment(d.target, d.gpu, tp, speculative=False, **common)
        spec, spec_info = build_deployment(d.target, d.gpu, tp, acceptance=profile, speculative=True, **common)
        base, spec, choice = calibrate(workload, base, spec, base_info, spec_info, host_class)
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
    sweep_args = dict(k=d.k, qps_list=None if closed else loads, workload=wl, method=d.method, seed=seed,
                      with_oracle=False, concurrency_list=[int(x) for x in loads] if closed else None)
    run = sweep.run_sweep(base, spec, **sweep_args)
    fields = set(DeploymentInputs.model_fields)
    run.inputs = RunInputs(
        deployment={role: DeploymentInputs(**{k: v for k, v in info.items() if k in fields})
                    for role, info in (("baseline", base_info), ("speculative", spec_info))},
        workload=WorkloadInputs(name=f"workload profile '{workload.name}' (decide)", arrival=wl.arrival.kind
                                if not closed else "closed_loop",
                                temperatures=[TemperatureShare(temperature=c.temperature, weight=c.weight,
                                                               category=c.category) for c in classes],
                                num_requests=num_requests, seed=seed, detail=wl.model_dump(mode="json")),
        acceptance=profile, k=d.k,
        step_time=StepTimeInputs(target=spec.target.model_dump(mode="json"),
                                 draft_cost=spec.draft.model_dump(mode="json", exclude={"draft_model"}),
                                 calibration=calibration_text(choice)))
    if choice.baseline_mode and choice.baseline_mode != choice.speculative_mode:
        run.findings.append(Finding(
            code="not_like_for_like", severity="info", source=Source.assumed,
            message=f"not like-for-like: the baseline runs engine mode {choice.baseline_mode}, the speculative "
                    f"server {choice.speculative_mode} (vLLM {d.vllm_version} switches it for {d.method}); the "
                    "simulated speedups include that switch", evidence={"mode_switches": choice.mode_switches}))
    speedups, batches = run_guard_points(run)
    flag = "--concurrency" if closed else "--qps"
    mix = ",".join(f"{c.temperature:g}:{c.share:g}" for c in workload.categories)
    cmd = (f"specwise simulate --target {d.target} " + (f"--draft {d.draft} " if d.draft else "")
           + f"--method {d.method} --gpu {d.gpu} --tp {tp} --k {d.k} --vllm-version {d.vllm_version} {flag} "
           + ",".join(f"{x:g}" for x in loads) + f" --temperature-mix {mix} --num-requests {num_requests} "
           + "--no-oracle" + (f" --calibration-host {host_class}" if host_class else ""))
    return SimulatedEvidence(run=run, guard_schedule=run_guard_schedule(run), guard_speedups=speedups,
                             guard_batches=batches, command=cmd)

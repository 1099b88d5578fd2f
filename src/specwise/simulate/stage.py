"""The simulate stage: ``run(SimulateConfig) -> RunResult``, and the deployment ``serve-sim`` serves.

Everything between a validated :class:`~specwise.schemas.configs.SimulateConfig` and the shared
:class:`~specwise.schemas.results.RunResult` lives here: filling in the defaults (the demo deployment, k,
the load list, a trace's native rate), the acceptance profile (:mod:`specwise.simulate.acceptance`), the two
deployments (:mod:`specwise.simulate.defaults`), the sweep (:mod:`specwise.simulate.sweep`), making the
recommended guard launchable (a draft model's name) and checking it against the vLLM version's facts
(``catalog/data/vllm_versions.json``), and the findings. The CLI only turns flags into the config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from specwise.catalog.vllm_versions import version_facts
from specwise.errors import UserError
from specwise.perf.calibration import CalibrationChoice, apply_calibration
from specwise.perf.steptime import PRICED_METHODS, is_priced_method
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.configs import SimulateConfig
from specwise.schemas.findings import Finding
from specwise.schemas.results import (
    DeploymentInputs,
    RunInputs,
    RunResult,
    StepTimeInputs,
    TemperatureShare,
    WorkloadInputs,
)
from specwise.schemas.servers import ServerInfo
from specwise.simulate import defaults as D
from specwise.simulate.acceptance import acceptance_profile
from specwise.simulate.run import Deployment
from specwise.simulate import sweep
from specwise.simulate.workload import (
    ArrivalSpec,
    LengthDist,
    RequestClass,
    WorkloadSpec,
    check_request_budget,
    load_rows,
)

DEFAULT_QPS = [1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
DEFAULT_DURATION_S = 120.0
GUARD_KEY = "num_speculative_tokens_per_batch_size"


@dataclass
class Resolved:
    """A config with every default filled in, and what it simulates."""

    config: SimulateConfig
    profile: AcceptanceProfile | None
    baseline: Deployment
    baseline_info: dict
    speculative: Deployment
    speculative_info: dict
    calibration: CalibrationChoice | None = None


def resolve(config: SimulateConfig, *, speculative: bool = True) -> Resolved:
    """Fill the defaults (demo deployment, method, TP, k) and build both deployments."""
    target, draft, method, tp = D.resolve_pair(config.target, config.draft, config.method, config.tp)
    if not is_priced_method(method):
        raise UserError(f"--method {method[:40]!r} is not a speculative method the simulator prices; use one of "
                        f"{', '.join(PRICED_METHODS)}")
    if speculative and method == "draft_model" and not draft:
        raise UserError("--method draft_model needs --draft MODEL")
    k = config.k if config.k is not None else (D.DEFAULT_K if method == "draft_model" else 3)
    cfg = config.model_copy(update={"target": target, "draft": draft, "method": method, "tp": tp, "k": k})
    profile = None
    if speculative:
        profile = acceptance_profile(rates=cfg.acceptance_rates, length=cfg.acceptance_length,
                                     profile_path=cfg.acceptance_profile, k=k, method=method,
                                     heterogeneity=cfg.heterogeneity, target=target, draft=draft)
    common = dict(method=method, draft_name=draft, draft_tp=cfg.draft_tp, quant=cfg.quantization,
                  max_num_seqs=cfg.max_num_seqs, max_num_batched_tokens=cfg.max_num_batched_tokens,
                  kv_capacity_tokens=cfg.kv_capacity_tokens, vllm_version=cfg.vllm_version, k=k)
    base_dep, base_info = D.build_deployment(target, cfg.gpu, tp, speculative=False, **common)
    spec_dep, spec_info = (D.build_deployment(target, cfg.gpu, tp, acceptance=profile, speculative=True, **common)
                           if speculative else (base_dep, base_info))
    choice = None
    if cfg.step_time_model is not None:
        if cfg.calibration:
            raise UserError("give --step-time-model or --calibration, not both")
        custom = D.load_step_time_model(cfg.step_time_model)
        base_dep = base_dep.model_copy(update={"target": custom})
        spec_dep = spec_dep.model_copy(update={"target": custom})
        base_info["step_time_model"] = spec_info["step_time_model"] = cfg.step_time_model
    else:
        base_dep, spec_dep, choice = _calibrate(cfg, base_dep, spec_dep, base_info, spec_info, speculative)
    return Resolved(cfg, profile, base_dep, base_info, spec_dep, spec_info, choice)


def _calibrate(cfg: SimulateConfig, base_dep: Deployment, spec_dep: Deployment, base_info: dict, spec_info: dict,
               speculative: bool) -> tuple[Deployment, Deployment, CalibrationChoice]:
    """Measured constants where a catalog calibration matches (each arm in its engine mode), else the roofline."""
    from specwise.catalog.models import get_model

    assert cfg.target is not None and cfg.method is not None and cfg.k is not None
    base_t, spec_t, spec_d, choice = apply_calibration(
        base_dep.target, spec_dep.target, spec_dep.draft, requested=cfg.calibration, gpu=base_info["gpu"],
        vllm_version=cfg.vllm_version, target=get_model(cfg.target)[0],
        draft=get_model(cfg.draft)[0] if cfg.draft else None, method=cfg.method, like_for_like=cfg.like_for_like,
        async_scheduling=cfg.async_scheduling, host_class=cfg.calibration_host)
    base_dep = base_dep.model_copy(update={"target": base_t})
    spec_dep = spec_dep.model_copy(update={"target": spec_t, "draft": spec_d}) if speculative else base_dep
    for info, mode in ((base_info, choice.baseline_mode), (spec_info, choice.speculative_mode)):
        info["calibration"], info["engine_mode"] = choice.name, mode
    if choice.name and speculative and spec_info.get("cost_ratio") is not None:
        # c from the calibrated constants (batch 1, short context), not the roofline's
        t1 = float(spec_t.forward_time(1, 0)) + float(spec_t.sched_time(1))
        spec_info["cost_ratio"] = float(spec_d.time(1, 0, cfg.k, target_forward_s=t1)) / cfg.k / t1
        spec_info["cost_ratio_basis"] = f"calibration {choice.name}, {choice.speculative_mode}, batch 1"
    return base_dep, spec_dep, choice


def temperature_classes(mix: dict[float, float] | None) -> list[RequestClass]:
    if not mix:
        return [RequestClass()]
    return [RequestClass(temperature=t, weight=w) for t, w in mix.items()]


def workload_spec(cfg: SimulateConfig) -> tuple[WorkloadSpec, list[float]]:
    """The workload and the open-loop rates to sweep (a trace without --qps runs at its native rate)."""
    for path, flag in ((cfg.trace, "--trace"), (cfg.dataset, "--dataset")):
        if path is not None and not Path(path).exists():
            raise UserError(f"{flag} file '{path}' not found")
    qps = sorted(cfg.qps) if cfg.qps else list(DEFAULT_QPS)
    arrival = cfg.arrival
    if cfg.trace is not None:
        arrival = "trace"
        if not cfg.qps:
            ts, _, _ = load_rows(cfg.trace, need_timestamp=True)
            native = (ts.size - 1) / ts[-1] if ts is not None and ts.size > 1 and ts[-1] > 0 else 1.0
            qps = [round(float(native), 6)]
    duration = cfg.duration_s
    if duration is None and cfg.num_requests is None:
        duration = DEFAULT_DURATION_S
    check_request_budget(qps, duration if cfg.trace is None else None, cfg.num_requests)
    workload = WorkloadSpec(
        arrival=ArrivalSpec(kind=arrival, qps=qps[0], burstiness=cfg.burstiness),
        prompt_len=LengthDist.parse(cfg.prompt_len) if cfg.prompt_len else D.DEFAULT_PROMPT_LEN,
        output_len=LengthDist.parse(cfg.output_len) if cfg.output_len else D.DEFAULT_OUTPUT_LEN,
        classes=temperature_classes(cfg.temperature_mix),
        num_requests=cfg.num_requests,
        duration_s=duration if cfg.num_requests is None and cfg.trace is None else None,
        trace_path=cfg.trace,
        dataset_path=cfg.dataset,
    )
    return workload, qps


def guard_supported(vllm_version: str | None) -> bool | None:
    """Does this vLLM have the per-batch-size k schedule (catalog version facts)? None when not given."""
    return version_facts(vllm_version).knows_key(GUARD_KEY) if vllm_version else None


def _inputs(r: Resolved, workload: WorkloadSpec) -> RunInputs:
    cfg = r.config
    fields = set(DeploymentInputs.model_fields)
    name = cfg.trace or cfg.dataset or (f"synthetic: prompts {workload.prompt_len.kind} mean "
                                        f"{workload.prompt_len.mean:g}, outputs {workload.output_len.kind} mean "
                                        f"{workload.output_len.mean:g} tokens")
    return RunInputs(
        deployment={role: DeploymentInputs(**{k: v for k, v in info.items() if k in fields})
                    for role, info in (("baseline", r.baseline_info), ("speculative", r.speculative_info))},
        workload=WorkloadInputs(name=name, arrival=workload.arrival.kind, burstiness=workload.arrival.burstiness,
                                temperatures=[TemperatureShare(temperature=c.temperature, weight=c.weight,
                                                               category=c.category) for c in workload.classes],
                                num_requests=workload.num_requests, duration_s=workload.duration_s, seed=cfg.seed,
                                detail=workload.model_dump(mode="json")),
        acceptance=r.profile, k=cfg.k,
        step_time=StepTimeInputs(target=r.speculative.target.model_dump(mode="json"),
                                 draft_cost=r.speculative.draft.model_dump(mode="json", exclude={"draft_model"}),
                                 calibration=_calibration_text(r)),
        simulate=cfg,
    )


def _calibration_text(r: Resolved) -> str:
    if r.config.step_time_model:
        return f"--step-time-model {r.config.step_time_model}"
    c = r.calibration
    if c is None:
        return "roofline from the catalog's model and GPU specs (specwise.perf.steptime.StepTimeModel.from_deployment)"
    modes = f"; engine modes: baseline {c.baseline_mode}, speculative {c.speculative_mode}" if c.baseline_mode else ""
    text = f"{c.label} ({c.reason}){modes}"
    return "; ".join([text, *(f"mode switch paid by the speculative server: {m}" for m in c.mode_switches), *c.notes])


def _servers(r: Resolved) -> dict[str, ServerInfo]:
    out = {}
    for role, dep, info in (("baseline", r.baseline, r.baseline_info),
                            ("speculative", r.speculative, r.speculative_info)):
        settings = {"max_num_seqs": str(dep.engine.max_num_seqs),
                    "max_num_batched_tokens": str(dep.engine.max_num_batched_tokens),
                    "kv_cache_tokens": str(dep.engine.kv_capacity_tokens), "tensor_parallel_size": str(info["tp"]),
                    "gpu": str(info["gpu"])}
        spec = role == "speculative"
        out[role] = ServerInfo(role=role, model=info["target"], version=r.config.vllm_version,
                               engine_generation="simulated", spec_method=r.config.method if spec else None,
                               k=r.config.k if spec else None, settings=settings)
    return out


def _findings(result: RunResult, r: Resolved) -> list[Finding]:
    cfg, sim = r.config, result.simulation
    out: list[Finding] = []
    unit = "requests in flight" if cfg.concurrency else "req/s"
    for cross in result.crossovers:
        if cross.position == "within" and cross.value is not None:
            out.append(Finding(code="simulated_crossover", severity="warning", source=Source.simulated,
                               message=f"simulated crossover: fixed-k speculation is slower above "
                                       f"~{cross.value:.2f} {unit}",
                               observed=cross.value, unit=unit, evidence={"batch_size": cross.batch_size}))
        elif cross.position == "below_range":
            out.append(Finding(code="slower_at_lowest_load", severity="warning", source=Source.simulated,
                               message="speculation is slower already at the lowest load simulated: the crossover "
                                       "is below the range", observed=cross.loads[0] if cross.loads else None,
                               unit=unit))
    c = r.calibration
    if c is not None and c.baseline_mode and c.baseline_mode != c.speculative_mode:
        out.append(Finding(code="not_like_for_like", severity="info", source=Source.assumed,
                           message=f"not like-for-like: the baseline runs engine mode {c.baseline_mode}, the "
                                   f"speculative server {c.speculative_mode} (vLLM {cfg.vllm_version or 'as calibrated'}"
                                   " switches it for this method); the speedups include that switch, --like-for-like "
                                   "removes it", evidence={"mode_switches": c.mode_switches}))
    if sim is not None and sim.guard is not None:
        out.append(Finding(code="guard_recommended", severity="info", source=Source.simulated,
                           message=f"recommended guard: {GUARD_KEY}="
                                   + json.dumps(sim.guard.num_speculative_tokens_per_batch_size),
                           evidence={"min_speedup_fixed": sim.guard.min_speedup_fixed,
                                     "min_speedup_guard": sim.guard.min_speedup_guard}))
        if sim.guard.supported_by_vllm_version is False:
            since, _ = version_facts(cfg.vllm_version).key_interval(GUARD_KEY)
            # V1 never honoured disable_by_batch_size (removed in 0.17.0; docs/reference/vllm-speculative-decoding.md §1.7)
            out.append(Finding(code="guard_needs_newer_vllm", severity="warning", source=Source.assumed,
                               message=f"vLLM {cfg.vllm_version} has no {GUARD_KEY} ({since}+) and V1 ignores "
                                       "disable_by_batch_size: the guard needs an upgrade; otherwise choose one k "
                                       "for your peak load (see --k-sweep)",
                               observed=cfg.vllm_version, threshold=since))
    return out


def run(config: SimulateConfig, *, records_path: str | None = None) -> RunResult:
    """Simulate baseline vs speculative over the config's loads; the result in the shared schema."""
    r = resolve(config)
    cfg = r.config
    workload, qps = workload_spec(cfg)
    if records_path is not None:
        Path(records_path).write_text("")
    assert cfg.k is not None and cfg.method is not None
    result = sweep.run_sweep(r.baseline, r.speculative, k=cfg.k, qps_list=qps, workload=workload, method=cfg.method,
                       seed=cfg.seed, with_oracle=cfg.oracle,
                       k_sweep=sorted(set(cfg.k_sweep)) if cfg.k_sweep else None,
                       concurrency_list=sorted(set(cfg.concurrency)) if cfg.concurrency else None,
                       records_path=records_path)
    guard = result.simulation.guard if result.simulation else None
    if guard is not None:
        if cfg.draft and "model" not in guard.speculative_config:
            # the guarded --speculative-config must be launchable as printed: draft_model needs its model
            sc = guard.speculative_config
            guard.speculative_config = {"method": sc.get("method"), "model": cfg.draft,
                                        **{key: v for key, v in sc.items() if key != "method"}}
        guard.supported_by_vllm_version = guard_supported(cfg.vllm_version)
        guard.vllm_since = version_facts().key_interval(GUARD_KEY)[0]
    result.inputs = _inputs(r, workload)
    result.servers = _servers(r)
    result.findings = _findings(result, r)
    return result

"""Reading decide's inputs: the workload profile and any subset of plan, estimate and run evidence.

Files are recognised by content, not by name: a ``PlanResult`` (``specwise plan --json``), an
``AcceptanceProfile`` or an ``EstimateResult`` (``specwise estimate --json`` / its output directory), a
``RunResult`` (``bench``'s ``summary.json`` or a ``simulate --out`` file) or a run directory holding one. Every
problem is one line saying what to do (:class:`~specwise.errors.UserError`, exit code 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from specwise.decide.adapter import (
    parse_run,
    run_calibration,
    run_guard_points,
    run_guard_schedule,
)
from specwise.errors import UserError
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.decision import EvidenceRef, Firmness
from specwise.schemas.estimate import EstimateResult
from specwise.schemas.plan import PlanResult
from specwise.schemas.results import RunResult
from specwise.schemas.workload import WorkloadProfile


@dataclass
class RunEvidence:
    """One run with where it came from and how firm it is."""

    run: RunResult
    path: str | None = None
    firmness: Firmness = "measured"
    calibration: str | None = None
    command: str | None = None
    guard_schedule: list[list[int]] | None = None
    guard_speedups: dict[float, float | None] = field(default_factory=dict)
    guard_batches: dict[float, float | None] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.run.source == Source.measured or self.run.source == "measured"


@dataclass
class ProfileEvidence:
    profile: AcceptanceProfile
    path: str | None = None
    estimate: EstimateResult | None = None  # when it came from an estimate result (quantisation rows)
    reference: bool = False  # the unquantised reference of a quantisation comparison


@dataclass
class Evidence:
    """Everything decide reads besides the workload profile."""

    plans: list[tuple[PlanResult, str | None]] = field(default_factory=list)
    profiles: list[ProfileEvidence] = field(default_factory=list)
    runs: list[RunEvidence] = field(default_factory=list)
    workload: WorkloadProfile | None = None
    workload_path: str | None = None
    # decide's own calibrated simulation per host class of its calibration, the one in ``runs`` first (its default
    # class), then one run per other class (rule host_class); empty with a single class
    host_variants: list[tuple[str, RunEvidence]] = field(default_factory=list)

    def refs(self) -> list[EvidenceRef]:
        out = []
        for plan, path in self.plans:
            out.append(EvidenceRef(kind="plan", path=path, source=Source.estimated, firmness="estimated",
                                   description=f"plan {plan.request.target} + {plan.request.draft or plan.memory.settings.method}",
                                   versions={"vllm": plan.memory.settings.vllm_version}))
        for p in self.profiles:
            src = Source(p.profile.source)
            out.append(EvidenceRef(kind="acceptance_profile", path=p.path, source=src,
                                   firmness="estimated" if src != Source.assumed else "assumed",
                                   description=f"acceptance {p.profile.method} "
                                   f"{p.profile.draft or ''} -> {p.profile.target or ''}".strip()))
        for r in self.runs:
            src = Source(r.run.source)
            out.append(EvidenceRef(kind="run_result", path=r.path, source=src, firmness=r.firmness,
                                   command=r.command, description=_run_description(r),
                                   versions={"specwise": r.run.tool_version}))
        return out


def _run_description(r: RunEvidence) -> str:
    loads = sorted({c.load for c in r.run.cells if c.load is not None})
    temps = sorted({c.temperature for c in r.run.cells if c.temperature is not None})
    text = f"{r.run.source} run, loads {', '.join(f'{x:g}' for x in loads) or '-'}"
    if temps:
        text += f", T {', '.join(f'{t:g}' for t in temps)}"
    if r.run.source == "simulated":
        text += f", calibration: {r.calibration}" if r.calibration else ", roofline defaults (uncalibrated)"
    return text


def run_firmness(run: RunResult) -> tuple[Firmness, str | None]:
    if run.source in (Source.measured, "measured"):
        return "measured", None
    cal = run_calibration(run)
    return ("simulated_calibrated" if cal else "simulated_roofline"), cal


def _read_data(path: Path) -> Any:
    if not path.exists():
        raise UserError(f"{path}: not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({exc})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                        f"({first})") from None


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(x) for x in e.get("loc", ())) or "(top level)"
    return f"{loc}: {e.get('msg', 'invalid')}"


def load_workload(path: str | Path) -> WorkloadProfile:
    """A workload profile from YAML or JSON; one-line errors (see examples/workload-profile.yaml)."""
    p = Path(path)
    data = _read_data(p)
    if not isinstance(data, dict):
        raise UserError(f"{p}: a workload profile is a mapping (see examples/workload-profile.yaml)")
    try:
        return WorkloadProfile.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{p}: invalid workload profile at {_first_error(exc)} "
                        "(see examples/workload-profile.yaml)") from None


def profile_from_estimate(est: EstimateResult) -> list[AcceptanceProfile]:
    """One AcceptanceProfile per method of an estimate result (per temperature, per category when present)."""
    out = []
    for m in est.methods:
        classes = []
        for t in m.temperatures:
            cond = t.conditional_acceptance or [0.0]
            classes.append(AcceptanceClass(category="all", temperature=t.temperature, conditional=cond,
                                           match_probability=t.match_probability,
                                           heterogeneity=t.heterogeneity))
            for c in t.categories:
                if c.conditional_acceptance:
                    classes.append(AcceptanceClass(
                        category=c.category, temperature=t.temperature, conditional=c.conditional_acceptance,
                        match_probability=c.match_probability, heterogeneity=c.heterogeneity,
                        rate_p10=c.acceptance_rate_p10, rate_p50=c.acceptance_rate_p50,
                        rate_p90=c.acceptance_rate_p90, num_requests=c.num_requests))
        out.append(AcceptanceProfile(target=est.target, draft=m.draft, method=m.method,
                                     verification=m.verification, source=Source.estimated, classes=classes,
                                     notes=[f"from specwise estimate ({m.method}, k_max {est.k_max})"]))
    return out


def _classify(data: Any, path: Path, ev: Evidence) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a specwise JSON (expected an object)")
    keys = set(data)
    try:
        if {"request", "memory"} <= keys:
            ev.plans.append((PlanResult.model_validate(data), str(path)))
        elif {"cells", "source"} <= keys and "tool_version" in keys:
            run = parse_run(data, where=str(path))
            firm, cal = run_firmness(run)
            speedups, batches = run_guard_points(run)
            ev.runs.append(RunEvidence(run=run, path=str(path), firmness=firm, calibration=cal,
                                       guard_schedule=run_guard_schedule(run), guard_speedups=speedups,
                                       guard_batches=batches))
        elif {"temperatures", "methods", "context"} <= keys:
            est = EstimateResult.model_validate(data)
            for prof in profile_from_estimate(est):
                ev.profiles.append(ProfileEvidence(profile=prof, path=str(path), estimate=est))
        elif {"classes", "method"} <= keys:
            ev.profiles.append(ProfileEvidence(profile=AcceptanceProfile.model_validate(data), path=str(path)))
        elif {"categories", "load", "deployment"} <= keys:
            ev.workload, ev.workload_path = WorkloadProfile.model_validate(data), str(path)
        else:
            raise UserError(f"{path}: not a plan, acceptance profile, estimate or run result JSON "
                            "(pass `specwise plan --json`, `estimate`, `bench --out` or `simulate --out` output)")
    except ValidationError as exc:
        raise UserError(f"{path}: looks like specwise output but does not validate ({_first_error(exc)}); "
                        "regenerate it with this specwise version") from None


def _run_dir_files(path: Path) -> list[Path]:
    if (path / "summary.json").exists():
        return [path / "summary.json"]
    if (path / "result.json").exists() or (path / "profile.json").exists():
        # an estimate output directory: result.json carries the quantisation rows and categories
        return [p for p in (path / "result.json", path / "profile.json") if p.exists()][:1]
    # a run's own side files: bench's config.json / lossless.json, simulate's FILE.config.json
    files = sorted(p for p in path.glob("*.json") if p.name not in ("config.json", "lossless.json")
                   and not p.name.endswith(".config.json"))
    if not files:
        raise UserError(f"{path}: no summary.json or result JSON in this directory (a bench run still going, or "
                        "not a run directory)")
    return files


def load_evidence(paths: list[str | Path] | tuple[str | Path, ...]) -> Evidence:
    """Read every path (file or run directory) into one :class:`Evidence`."""
    ev = Evidence()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in _run_dir_files(p):
                _classify(_read_data(f), f, ev)
                if ev.runs and ev.runs[-1].path == str(f):
                    ev.runs[-1].path = str(p)
        else:
            _classify(_read_data(p), p, ev)
    return ev

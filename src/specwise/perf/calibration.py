"""Named calibrations: step-time constants measured on a real engine, per GPU, vLLM version and model shapes.

The roofline (:meth:`StepTimeModel.from_deployment`) prices GPU work; it does not see the host: launches,
scheduling and per-sequence bookkeeping between passes, which dominate a small draft's sequential passes and
differ between engine modes (vLLM's Model Runner V2 with async scheduling vs the V1 runner, synchronous). A
calibration holds, per engine mode, the target step model fitted on a real server, and the draft's per-pass
cost, with where they were measured (``catalog/data/calibrations.json``; fitted by
:mod:`specwise.perf.calibrate` from ``specwise bench`` runs).

:func:`choose_calibration` picks the calibration whose GPU, vLLM version and target/draft *shapes* match (or
the one named); :func:`apply_calibration` turns a baseline and a speculative deployment into the calibrated
ones, with the engine mode each arm runs in taken from the version facts (the speculative server pays the
mode switch its version makes). Without a match the roofline stays and says so.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import Field

from specwise.errors import UserError
from specwise.perf.steptime import DraftCost, StepTimeModel
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.model import ModelSpec

SHAPE_FIELDS = ("hidden_size", "num_layers", "num_attention_heads", "num_kv_heads", "head_dim", "intermediate_size",
                "vocab_size", "tie_word_embeddings", "num_experts")


class HostClass(SpecwiseModel):
    """A draft pass fitted on another machine instance of the calibration's type whose host ran it slower.

    A V1 synchronous speculative step leaves the GPU idle while the host prepares each draft pass, so the same
    GPU behind a slower CPU runs it slower (issue 12: the Python loop of the slow instance took twice as long)."""

    description: str
    python_loop_ns: float | None = Field(None, description="host probe: ns per pure-Python loop iteration on the "
                                         "instance where this class was checked (benchmarks/gpu/host_probe.py)")
    draft_pass: dict[str, StepTimeModel] = Field(description="draft pass per engine mode on hosts of this class")
    errors: list[dict] = Field(default_factory=list, description="held-out errors on a host of this class")


class Calibration(SpecwiseModel):
    """Fitted constants of one measured setting (see the module docstring)."""

    name: str
    gpu: str = Field(description="catalog GPU name the constants were measured on")
    vllm_since: str
    vllm_until: str | None = None
    target: str = Field(description="catalog model whose *shape* was measured (weights may be random)")
    draft: str | None = None
    host: str = Field(description="CPU of the measuring host: host-side costs depend on it")
    provenance: str
    modes: dict[str, StepTimeModel] = Field(description="target step model per engine mode (v2_async, v1_sync, ...)")
    mode_notes: dict[str, str] = Field(default_factory=dict)
    draft_pass: dict[str, StepTimeModel] = Field(default_factory=dict,
                                                 description="draft_model: cost of one draft pass, per engine mode")
    proposers: dict[str, DraftCost] = Field(default_factory=dict,
                                            description="measured proposer cost per method other than draft_model "
                                                        "(eagle: an EAGLE-1 head of the target's shape; ngram)")
    errors: list[dict] = Field(default_factory=list, description="out-of-sample errors measured (see README)")
    default_host_class: str = Field("fast", description="name of the host class ``draft_pass`` was measured on")
    host_python_loop_ns: float | None = Field(None, description="host probe of an instance of the default class")
    host_classes: dict[str, HostClass] = Field(default_factory=dict, description="other host classes: their "
                                               "draft pass (simulate --calibration-host NAME)")
    host_instances: list[dict] = Field(default_factory=list, description="the draft pass fitted on each measured "
                                       "machine instance (not used for pricing; shows the host spread)")

    def host_class_names(self) -> list[str]:
        return [self.default_host_class, *self.host_classes]

    def draft_passes(self, host_class: str | None) -> dict[str, StepTimeModel]:
        """The draft pass per engine mode on hosts of ``host_class`` (None: the default class)."""
        if host_class in (None, self.default_host_class):
            return self.draft_pass
        if host_class not in self.host_classes:
            raise UserError(f"calibration {self.name} has no host class '{host_class}': use one of "
                            f"{', '.join(self.host_class_names())}")
        return self.host_classes[host_class].draft_pass

    def covers_version(self, version: str) -> bool:
        from specwise.catalog.vllm_versions import parse_version

        v = parse_version(version)
        return parse_version(self.vllm_since) <= v and (self.vllm_until is None or v < parse_version(self.vllm_until))


@lru_cache(maxsize=1)
def load_calibrations() -> tuple[Calibration, ...]:
    text = resources.files("specwise.catalog").joinpath("data/calibrations.json").read_text()
    return tuple(Calibration.model_validate(c) for c in json.loads(text)["calibrations"])


def get_calibration(name: str) -> Calibration:
    for cal in load_calibrations():
        if cal.name == name:
            return cal
    names = ", ".join(c.name for c in load_calibrations())
    raise UserError(f"unknown calibration '{name}': known are {names} (or 'none' for the roofline)")


def same_shape(a: ModelSpec, b: ModelSpec) -> bool:
    """Same architecture numbers (what the step time depends on), whatever the weights or the name."""
    return all(getattr(a, f, None) == getattr(b, f, None) for f in SHAPE_FIELDS)


class CalibrationChoice(SpecwiseModel):
    """Which constants a simulation uses and why (shown by simulate, kept in its inputs)."""

    name: str | None = Field(None, description="calibration used; null = roofline")
    label: str
    reason: str
    baseline_mode: str | None = None
    speculative_mode: str | None = None
    mode_switches: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def choose_calibration(requested: str | None, gpu: str, vllm_version: str | None, target: ModelSpec,
                       draft: ModelSpec | None, method: str) -> tuple[Calibration | None, str]:
    """The calibration to use and why: ``requested`` ('none' = roofline), else the first that matches."""
    from specwise.catalog.models import get_model

    if requested and requested.lower() == "none":
        return None, "roofline requested (--calibration none)"
    if requested:
        cal = get_calibration(requested)
        return cal, f"requested (--calibration {requested})"
    for cal in load_calibrations():
        if cal.gpu != gpu or (vllm_version and not cal.covers_version(vllm_version)):
            continue
        if not same_shape(get_model(cal.target)[0], target):
            continue
        if method == "draft_model" and (draft is None or cal.draft is None
                                        or not same_shape(get_model(cal.draft)[0], draft)):
            continue
        why = f"GPU {gpu}, target shape of {cal.target}" + (f", draft shape of {cal.draft}" if draft else "")
        why += f", vLLM {vllm_version}" if vllm_version else f"; vLLM version not given: assumed {cal.vllm_since}"
        return cal, f"matches {why}"
    return None, (f"no calibration for {gpu} / vLLM {vllm_version or 'any'} / this target"
                  f"{' and draft' if draft else ''} shape: roofline scaled by the GPU's bandwidth and FLOP/s")


def _mode(cal: Calibration, mode: str, notes: list[str]) -> StepTimeModel:
    if mode in cal.modes:
        return cal.modes[mode]
    # V1 runner with async scheduling: the scheduling the async mode hides is the V2 async mode's too
    fallback = "v2_async" if mode.endswith("_async") else "v1_sync"
    notes.append(f"engine mode {mode} not measured in {cal.name}: its {fallback} constants are used")
    return cal.modes[fallback]


def apply_calibration(
    base_target: StepTimeModel,
    spec_target: StepTimeModel,
    spec_draft: DraftCost,
    *,
    requested: str | None,
    gpu: str,
    vllm_version: str | None,
    target: ModelSpec,
    draft: ModelSpec | None,
    method: str,
    like_for_like: bool = False,
    async_scheduling: bool | None = None,
    host_class: str | None = None,
) -> tuple[StepTimeModel, StepTimeModel, DraftCost, CalibrationChoice]:
    """Calibrated (baseline target, speculative target, speculative draft cost) and the choice made.

    The engine mode of each arm comes from the version facts (:meth:`VersionFacts.engine_modes`): the baseline
    runs the version's default, the speculative server the mode its method switches to (``like_for_like``:
    the baseline runs that mode too; ``async_scheduling``: the launch flag given to the speculative server).
    ``host_class`` picks the draft pass measured on that class of host (None: the calibration's default).
    """
    from specwise.catalog.vllm_versions import version_facts

    cal, reason = choose_calibration(requested, gpu, vllm_version, target, draft, method)
    version = vllm_version or (cal.vllm_since if cal else None)
    modes = version_facts(version).engine_modes(method, async_scheduling) if version else None
    notes: list[str] = []
    if modes is None:
        notes.append(f"engine mode switches of vLLM {version or '(version not given)'} are not in the catalog: "
                     "both arms priced in the same mode")
        base_mode = spec_mode = None
        switches: list[str] = []
    else:
        base_mode, spec_mode, switches = modes.baseline, modes.speculative, modes.switches
        if like_for_like:
            base_mode = spec_mode
    if cal is None and host_class is not None:
        raise UserError(f"--calibration-host {host_class} needs a calibration, and none is used ({reason}); "
                        "drop the flag or name one with --calibration")
    if cal is None:
        choice = CalibrationChoice(label="roofline (estimated, not calibrated)", reason=reason, baseline_mode=base_mode,
                                   speculative_mode=spec_mode, mode_switches=switches, notes=notes)
        host = _host_terms_for_version(version)
        if host is not None and base_mode and spec_mode:
            # Host-side costs do not scale with the GPU: carry the measured per-mode overheads over
            b, s = _mode(host, base_mode, notes), _mode(host, spec_mode, notes)
            base_target = base_target.model_copy(update={"t_seq_s": b.t_seq_s})
            delta = max(0.0, s.t_fix_s - b.t_fix_s)
            spec_target = spec_target.model_copy(update={"t_seq_s": s.t_seq_s,
                                                         "t_sched_s": spec_target.t_sched_s + delta})
            choice.label = f"roofline + host terms of engine modes measured in {host.name}"
            choice.notes.append(f"speculative mode {spec_mode} costs {delta * 1e3:.2f} ms/step more host time than "
                                f"{base_mode} (measured on {host.host}, {host.gpu}); per-sequence host cost "
                                f"{b.t_seq_s * 1e6:.0f}/{s.t_seq_s * 1e6:.0f} us from the same run")
        return base_target, spec_target, spec_draft, choice
    base_cal = _mode(cal, base_mode or "v2_async", notes)
    spec_cal = _mode(cal, spec_mode or base_mode or "v2_async", notes)
    draft_cost = spec_draft
    passes = cal.draft_passes(host_class)
    if method == "draft_model" and passes:
        key = spec_mode if spec_mode in passes else next(iter(passes))
        if key != spec_mode:
            notes.append(f"draft pass cost measured in mode {key}, used for {spec_mode}")
        draft_cost = DraftCost(method="draft_model", draft_model=passes[key])
        notes.append(_host_class_note(cal, host_class or cal.default_host_class, passes[key]))
    elif method in cal.proposers:
        draft_cost = cal.proposers[method]
        notes.append(f"{method} proposer cost measured in {cal.name} (engine mode {spec_mode})")
    elif method != "draft_model":
        notes.append(f"{cal.name} has no {method} proposer cost: the roofline's is used for the proposer")
    choice = CalibrationChoice(name=cal.name, label=f"calibration {cal.name} (measured)", reason=reason,
                               baseline_mode=base_mode, speculative_mode=spec_mode, mode_switches=switches,
                               notes=notes + [f"measured on {cal.gpu} with vLLM {cal.vllm_since}, host {cal.host}; "
                                              f"{cal.provenance}"])
    return base_cal, spec_cal, draft_cost, choice


def _host_class_note(cal: Calibration, used: str, draft_pass: StepTimeModel) -> str:
    """Which host class prices the draft pass, and what the others would cost (the host spread, issue 12)."""
    def probe(ns: float | None) -> str:
        return f", Python loop {ns:.0f} ns" if ns else ""

    classes = {cal.default_host_class: (probe(cal.host_python_loop_ns), cal.draft_pass),
               **{n: (probe(h.python_loop_ns), h.draft_pass) for n, h in cal.host_classes.items()}}
    others = [f"'{n}' {next(iter(p.values())).t_fix_s * 1e3:.2f} ms{pr}" for n, (pr, p) in classes.items()
              if n != used and p]
    text = (f"draft pass of host class '{used}' ({draft_pass.t_fix_s * 1e3:.2f} ms fixed per pass"
            f"{classes[used][0]})")
    if others:
        text += (f"; measured on other instances of this machine type: {', '.join(others)} "
                 "(--calibration-host NAME); the host you serve on decides which applies: bench on it")
    return text


def _host_terms_for_version(version: str | None) -> Calibration | None:
    if not version:
        return None
    return next((c for c in load_calibrations() if c.covers_version(version)), None)


def calibrated_cost_ratio(gpu: str, vllm_version: str | None, target: ModelSpec, draft: ModelSpec | None,
                          method: str, k: int) -> tuple[float, str] | None:
    """c at batch 1 from a matching calibration (the speculative server's engine mode), or None without one."""
    from specwise.catalog.vllm_versions import engine_modes_for

    if method != "draft_model" or k < 1:
        return None
    cal, _ = choose_calibration(None, gpu, vllm_version, target, draft, method)
    if cal is None or not cal.draft_pass:
        return None
    modes = engine_modes_for(vllm_version or cal.vllm_since, method)
    mode = modes.speculative if modes else "v1_sync"
    notes: list[str] = []
    t = _mode(cal, mode, notes)
    d = cal.draft_pass.get(mode) or next(iter(cal.draft_pass.values()))
    t1 = float(t.forward_time(1, 0)) + float(t.sched_time(1))
    c = float(DraftCost(method="draft_model", draft_model=d).time(1, 0, k, target_forward_s=t1)) / k / t1
    return c, f"calibration {cal.name}, engine mode {mode}, batch 1"

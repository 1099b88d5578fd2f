"""The report's inputs: every file or run directory a user names, read into typed evidence.

``specwise report INPUT...`` takes any subset of: a ``Decision`` JSON (decide), ``RunResult`` JSON files or
run directories (bench's ``--out`` directory, simulated or measured), a ``PlanResult`` JSON (plan ``--json``),
an ``AcceptanceProfile`` or ``EstimateResult`` JSON (estimate), a ``WorkloadProfile`` (YAML or JSON) and
monitor recordings (JSONL). Each file is recognised by which schema it validates against, so the user never
says what a file is. A run directory's ``records.jsonl`` gives the per-request acceptance histogram; its
``config.json`` gives the tool, Python and platform versions behind it.

Run results are read through their public fields only (cells, comparisons, crossovers, acceptance_breakdown,
lossless, findings), so version-1 and later run schemas both render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from specwise.errors import UserError
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.decision import Decision
from specwise.schemas.estimate import EstimateResult
from specwise.schemas.plan import PlanResult
from specwise.schemas.results import RequestRecord, RunResult
from specwise.schemas.workload import WorkloadProfile

__all__ = [
    "ReportInputs",
    "RunInput",
    "as_report_inputs",
    "load_inputs",
    "read_run_dir",
    "run_command",
    "run_config",
    "run_servers",
]


def run_from_dict(data: Any, where: str) -> RunResult:
    """A RunResult of any schema version (the schema's reader upgrades version 1)."""
    from specwise.schemas.run_io import run_result_from_dict

    return run_result_from_dict(data, where=where)


def run_config(result: RunResult) -> dict[str, Any]:
    """The inputs that produced a run (``RunResult.inputs``) as plain data."""
    return result.inputs.model_dump(mode="json")


def run_command(result: RunResult) -> str | None:
    """The command a run recorded about itself, if any (the demo records one for its simulated runs)."""
    cfg = run_config(result)
    command = cfg.get("command") or (cfg.get("legacy_config") or {}).get("command")
    return str(command) if command else None


def run_servers(result: RunResult) -> dict[str, dict[str, Any]]:
    """Per role, what the server was (``ServerInfo``) as plain data."""
    return {role: info.model_dump(mode="json") for role, info in (result.servers or {}).items()}


@dataclass
class RunInput:
    """One run (measured or simulated) with what was found next to it."""

    path: str | None
    result: RunResult
    records: list[RequestRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # config.json of a bench run directory
    command: str | None = None

    @property
    def source(self) -> str:
        return str(getattr(self.result.source, "value", self.result.source))


@dataclass
class ReportInputs:
    """Everything the report renders; any part may be empty."""

    decision: Decision | None = None
    decision_path: str | None = None
    runs: list[RunInput] = field(default_factory=list)
    plans: list[tuple[str | None, PlanResult]] = field(default_factory=list)
    profiles: list[tuple[str | None, AcceptanceProfile]] = field(default_factory=list)
    estimates: list[tuple[str | None, EstimateResult]] = field(default_factory=list)
    workload: WorkloadProfile | None = None
    workload_path: str | None = None
    monitor: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown under the verdict (e.g. the demo's caveat)

    def is_empty(self) -> bool:
        return not (self.decision or self.runs or self.plans or self.profiles or self.estimates or self.monitor
                    or self.workload)


# Schemas a JSON file may be, tried in this order (the first that validates wins; they share few fields).
_JSON_KINDS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("decision", Decision),
    ("run", RunResult),
    ("plan", PlanResult),
    ("estimate", EstimateResult),
    ("profile", AcceptanceProfile),
    ("workload", WorkloadProfile),
)

# A run directory (bench --out, or the demo) may carry the command that produced it in this file.
COMMAND_FILE = "command.txt"


def _records_from_jsonl(path: Path) -> list[RequestRecord]:
    """Request records of a run directory (bench: {"cell", "attempt", "record"} lines; simulate: bare records).

    Only the last attempt of each cell counts (an interrupted cell re-run by --resume leaves its partial first
    attempt in the file); a torn last line is skipped.
    """
    rows: list[tuple[str | None, int, dict]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "record" in row:
            rows.append((row.get("cell"), int(row.get("attempt", 0)), row["record"]))
        elif isinstance(row, dict):
            rows.append((None, 0, row))
    last: dict[str | None, int] = {}
    for cell, attempt, _ in rows:
        last[cell] = max(last.get(cell, 0), attempt)
    out = []
    for cell, attempt, rec in rows:
        if attempt != last[cell]:
            continue
        try:
            out.append(RequestRecord.model_validate(rec))
        except ValidationError:
            continue  # a record of a newer schema: the histogram falls back to the run's breakdown
    return out


def read_run_dir(path: Path) -> RunInput:
    """A bench run directory: summary.json (RunResult), records.jsonl, config.json, command.txt."""
    summary = path / "summary.json"
    if not summary.exists():
        raise UserError(f"{path}: a run directory needs summary.json (the RunResult bench writes at the end); "
                        "an interrupted bench run writes it too: rerun with --resume to finish it")
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{summary}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    result = run_from_dict(data, str(summary))
    run = RunInput(path=str(path), result=result)
    records = path / "records.jsonl"
    if records.exists():
        run.records = _records_from_jsonl(records)
    config = path / "config.json"
    if config.exists():
        try:
            run.meta = json.loads(config.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            run.meta = {}
    cmd = path / COMMAND_FILE
    if cmd.exists():
        run.command = cmd.read_text(encoding="utf-8").strip() or None
    return run


def _classify(path: Path, data: Any) -> tuple[str, BaseModel]:
    for kind, model in _JSON_KINDS:
        if kind == "run" and isinstance(data, dict) and "cells" in data and "source" in data:
            return kind, run_from_dict(data, str(path))
        try:
            return kind, model.model_validate(data)
        except ValidationError:
            continue
    raise UserError(f"{path}: not a specwise result (tried Decision, RunResult, PlanResult, EstimateResult, "
                    "AcceptanceProfile, WorkloadProfile); pass the JSON that decide, bench, simulate --out, plan "
                    "--json or estimate wrote")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {n}: not JSON; a monitor recording has one JSON object per line") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_inputs(paths: list[str | Path], *, follow_decision: bool = True) -> ReportInputs:
    """Read every input; a path that is none of the known kinds is a one-line UserError.

    With ``follow_decision``, the evidence files a decision lists (``EvidenceRef.path``) that exist and were not
    given are read too, so ``specwise report decision.json`` shows the charts of what decide read.
    """
    inputs = ReportInputs()
    seen: set[Path] = set()
    for raw in paths:
        _load_one(inputs, Path(raw))
        seen.add(Path(raw).resolve())
    if follow_decision and inputs.decision is not None:
        base = Path(inputs.decision_path).parent if inputs.decision_path else Path(".")
        extra = []
        for ref in inputs.decision.evidence:
            if not ref.path or ref.kind in ("workload", "decision"):
                continue
            candidates = [Path(ref.path), base / ref.path]
            found = next((c for c in candidates if c.exists()), None)
            if found is not None and found.resolve() not in seen:
                seen.add(found.resolve())
                extra.append(found)
        for path in extra:
            _load_one(inputs, path)
        if extra:
            inputs.notes.append("Also read the evidence the decision lists: " + ", ".join(map(str, extra)) + ".")
    if inputs.is_empty():
        raise UserError("no inputs: pass a decision, run results or run directories, a plan, an acceptance profile "
                        "or estimate, a workload profile or monitor recordings")
    return inputs


def _load_one(inputs: ReportInputs, path: Path) -> None:
    if not path.exists():
        raise UserError(f"input '{path}' not found")
    if path.is_dir():
        inputs.runs.append(read_run_dir(path))
        return
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _read_jsonl(path)
        if rows and "record" in rows[0] and "cell" in rows[0]:
            raise UserError(f"{path}: a bench records file; pass its run directory ({path.parent}) instead")
        inputs.monitor.append((str(path), rows))
        return
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; pass JSON, YAML or JSONL results") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    kind, obj = _classify(path, data)
    _add(inputs, kind, obj, str(path))


def _add(inputs: ReportInputs, kind: str, obj: Any, path: str | None) -> None:
    if kind == "decision":
        if inputs.decision is not None:
            raise UserError(f"{path}: a second decision; a report renders one decision")
        inputs.decision, inputs.decision_path = obj, path
        if obj.workload is not None and inputs.workload is None:
            inputs.workload = obj.workload
    elif kind == "run":
        inputs.runs.append(RunInput(path=path, result=obj, command=run_command(obj)))
    elif kind == "plan":
        inputs.plans.append((path, obj))
    elif kind == "estimate":
        inputs.estimates.append((path, obj))
    elif kind == "profile":
        inputs.profiles.append((path, obj))
    elif kind == "workload":
        inputs.workload, inputs.workload_path = obj, path


def as_report_inputs(decision: Decision | None, evidence: Any) -> ReportInputs:
    """The report's inputs from what ``decide`` holds: a ReportInputs, a list of paths, or decide's Evidence.

    decide's Evidence is read by attribute (runs / plan(s) / profiles / estimates / workload), so this module
    does not import decide; run entries may be RunResults, RunInputs or paths.
    """
    if isinstance(evidence, ReportInputs):
        inputs = evidence
    elif evidence is None:
        inputs = ReportInputs()
    elif isinstance(evidence, (list, tuple)) and all(isinstance(p, (str, Path)) for p in evidence):
        inputs = load_inputs(list(evidence)) if evidence else ReportInputs()
    else:
        inputs = ReportInputs()
        for run in _as_list(getattr(evidence, "runs", None)):
            inputs.runs.append(_run_input(run))
        for name in ("plans", "plan"):
            for plan in _as_list(getattr(evidence, name, None)):
                # decide keeps (PlanResult, path) pairs
                item, path = (plan[0], plan[1]) if isinstance(plan, tuple) else (plan, None)
                if isinstance(item, PlanResult):
                    inputs.plans.append((str(path) if path else None, item))
        for name in ("profiles", "estimates"):
            for prof in _as_list(getattr(evidence, name, None)):
                # decide wraps each profile (ProfileEvidence: .profile, .path, .estimate)
                path = getattr(prof, "path", None)
                est = getattr(prof, "estimate", None)
                item = getattr(prof, "profile", prof)
                if isinstance(est, EstimateResult):
                    if all(e is not est for _, e in inputs.estimates):
                        inputs.estimates.append((str(path) if path else None, est))
                elif isinstance(item, AcceptanceProfile):
                    inputs.profiles.append((str(path) if path else None, item))
                elif isinstance(item, EstimateResult):
                    inputs.estimates.append((str(path) if path else None, item))
        wl = getattr(evidence, "workload", None)
        if isinstance(wl, WorkloadProfile):
            inputs.workload = wl
    if decision is not None:
        inputs.decision = decision
        if inputs.workload is None and decision.workload is not None:
            inputs.workload = decision.workload
    return inputs


def _run_input(run: Any) -> RunInput:
    """A run as decide or a caller holds it: a RunInput, a RunResult, a path, or a wrapper (.run / .result, .path)."""
    if isinstance(run, RunInput):
        return run
    if isinstance(run, (str, Path)):
        path = Path(run)
        if path.is_dir():
            return read_run_dir(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise UserError(f"{path}: not a readable RunResult JSON") from None
        result = run_from_dict(data, str(path))
        return RunInput(path=str(path), result=result, command=run_command(result))
    if isinstance(run, RunResult):
        return RunInput(path=None, result=run, command=run_command(run))
    result = getattr(run, "run", None) or getattr(run, "result", None)
    if not isinstance(result, RunResult):
        raise TypeError(f"not a run: {type(run).__name__}")
    path = getattr(run, "path", None)
    if path and Path(path).is_dir():
        return read_run_dir(Path(path))  # records.jsonl and config.json come with the directory
    return RunInput(path=str(path) if path else None, result=result,
                    command=getattr(run, "command", None) or run_command(result))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]

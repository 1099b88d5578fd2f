"""Reading run results from disk: a run directory or a JSON file, schema version 1 or 2.

Version 1 (specwise before issue 10) kept ``config`` and ``servers`` as untyped dicts whose shape differed
by source and ``findings`` as plain sentences. :func:`upgrade_v1` converts such a result: a measured run's
config becomes ``inputs.bench`` (with ``inputs.workload`` drawn from it), a simulated run's
becomes ``inputs.deployment`` / ``acceptance`` / ``step_time`` / ``workload``, servers become
:class:`~specwise.schemas.servers.ServerInfo`, and each sentence becomes a ``Finding`` with code ``legacy``.
What does not convert is kept verbatim in ``inputs.legacy_config``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from specwise.errors import UserError
from specwise.schemas.results import DeploymentInputs, RunResult, TemperatureShare, WorkloadInputs

SUMMARY_FILE = "summary.json"


def load_run_result(path: str | Path) -> RunResult:
    """The :class:`RunResult` in ``path``: a bench run directory (its summary.json) or a RunResult JSON file."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
        if not p.exists():
            raise UserError(f"{path}: no {SUMMARY_FILE} in this directory (a bench run writes it at the end, "
                            "or on Ctrl-C); finish the run with `specwise bench --resume --out DIR`")
    if not p.exists():
        raise UserError(f"{path}: no such run directory or file")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: not a JSON run result ({exc})") from None
    return run_result_from_dict(data, where=str(p))


def run_result_from_dict(data: Any, where: str = "run result") -> RunResult:
    """Validate a RunResult of either schema version (version 1 is converted, see :func:`upgrade_v1`)."""
    if not isinstance(data, dict) or "source" not in data:
        raise UserError(f"{where}: not a specwise RunResult (no 'source'); give a `simulate --out` file or a "
                        "`bench --out` run directory")
    version = data.get("schema_version", 1)
    if version == 1:
        data = upgrade_v1(data)
    elif version != 2:
        raise UserError(f"{where}: schema_version {version} is newer than this specwise reads (1 or 2); "
                        "upgrade specwise")
    try:
        return RunResult.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise UserError(f"{where}: not a valid RunResult (schema version {version}; {loc}: {err.get('msg')})") \
            from None


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 RunResult dict in the version-2 shape (see the module docstring)."""
    out = dict(data)
    out["schema_version"] = 2
    if out.get("source") == "measured":
        return out  # RunResult reads a measured run's `config` and server dicts itself (its before-validators)
    config = dict(out.pop("config", None) or {})
    servers = out.pop("servers", None) or {}
    out["inputs"] = _simulated_inputs(config)
    out["servers"] = {role: _simulated_server(role, info) for role, info in servers.items()
                      if isinstance(info, dict) and info}
    return out


def _simulated_inputs(config: dict[str, Any]) -> dict[str, Any]:
    fields = set(DeploymentInputs.model_fields)
    deployment = {role: {k: v for k, v in config[role].items() if k in fields}
                  for role in ("baseline", "speculative") if isinstance(config.get(role), dict)}
    inputs: dict[str, Any] = {"deployment": deployment, "k": config.get("k"), "legacy_config": config}
    spec = config.get("speculative") or {}
    acc = config.get("acceptance")
    if isinstance(acc, dict) and acc.get("classes") and spec.get("target"):
        inputs["acceptance"] = {"target": spec["target"], "draft": spec.get("draft"),
                                "method": spec.get("method") or "draft_model", "source": acc.get("source", "assumed"),
                                "classes": acc["classes"], "notes": acc.get("notes") or []}
    if isinstance(config.get("step_time_model"), dict):
        inputs["step_time"] = {"target": config["step_time_model"], "draft_cost": config.get("draft_cost") or {},
                               "calibration": spec.get("step_time_model") or "roofline from catalog specs"}
    wl = config.get("workload")
    if isinstance(wl, dict):
        arrival = wl.get("arrival") or {}
        inputs["workload"] = WorkloadInputs(
            name=wl.get("trace_path") or wl.get("dataset_path") or "synthetic lengths",
            arrival=str(arrival.get("kind", "poisson")), burstiness=arrival.get("burstiness"),
            temperatures=[TemperatureShare(temperature=c.get("temperature", 0.0), weight=c.get("weight", 1.0),
                                           category=c.get("category")) for c in wl.get("classes") or []],
            num_requests=wl.get("num_requests"), duration_s=wl.get("duration_s"), seed=config.get("seed", 0),
            detail=wl).model_dump(mode="json")
    return inputs


def _simulated_server(role: str, info: dict[str, Any]) -> dict[str, Any]:
    """A version-1 simulated 'server' (the deployment description) as a ServerInfo."""
    settings = {k: str(info[k]) for k in ("gpu", "tp", "quantization", "kv_capacity_tokens") if info.get(k) is not None}
    return {"role": role, "model": info.get("target"), "engine_generation": "simulated",
            "spec_method": info.get("method"), "settings": settings}

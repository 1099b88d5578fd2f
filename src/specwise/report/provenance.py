"""Where every input came from: the command that produced it and the versions behind it.

A reader of the report must be able to re-run each piece of evidence. Commands come, in order of
preference, from the input itself (a run directory's ``command.txt``, a simulated run's ``config.command``,
decide's ``EvidenceRef.command``), else they are rebuilt from the recorded options (a plan's request, a bench
run's ``config.json``) and say so.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from specwise.report.inputs import ReportInputs, RunInput, run_config, run_servers

__all__ = ["InputRow", "provenance_rows"]


@dataclass
class InputRow:
    kind: str
    path: str
    source: str
    description: str
    command: str | None
    command_note: str = ""
    versions: dict[str, str] = field(default_factory=dict)


# BenchConfig field -> `specwise bench` flag (fields not listed are set by the bench itself or have no flag).
_BENCH_FLAGS = {
    "baseline_url": "--baseline", "speculative_url": "--speculative", "baseline_cmd": "--baseline-cmd",
    "speculative_cmd": "--speculative-cmd", "model": "--model", "api": "--api", "api_key_env": "--api-key-env",
    "workload": "--workload", "num_requests": "--num-requests", "duration_s": "--duration", "repeats": "--repeats",
    "k": "--k", "arrival": "--arrival", "burstiness": "--burstiness", "concurrency": "--concurrency",
    "max_tokens": "--max-tokens", "top_p": "--top-p", "top_k": "--top-k", "seed": "--seed",
    "timeout_s": "--timeout", "error_budget": "--error-budget", "startup_timeout_s": "--startup-timeout",
    "warmup_requests": "--warmup", "client_workers": "--client-workers", "gpu": "--gpu",
    "gpu_memory_gib": "--gpu-memory-gib", "plan_file": "--plan", "production_temperature": "--production-temperature",
    "token_counting": "--token-counting",
}
_BENCH_BOOL = {"ignore_eos": "--ignore-eos", "like_for_like": "--like-for-like",
               "request_token_ids": "--return-token-ids"}
_BENCH_DEFAULTS = {"api": "chat", "workload": "chat", "repeats": 1, "arrival": "poisson", "burstiness": 1.0, "seed": 0,
                   "timeout_s": 600.0, "error_budget": 0.2, "startup_timeout_s": 1800.0, "warmup_requests": 2,
                   "token_counting": "auto", "num_requests": 100}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def bench_command(bench: dict[str, Any]) -> str:
    """The `specwise bench` command equivalent to a recorded BenchConfig (non-default options only)."""
    argv = ["specwise", "bench"]
    for key, flag in _BENCH_FLAGS.items():
        v = bench.get(key)
        if v is None or _BENCH_DEFAULTS.get(key) == v:
            continue
        argv += [flag, _fmt(v)]
    if bench.get("qps"):
        argv += ["--qps", ",".join(_fmt(q) for q in bench["qps"])]
    temps = bench.get("temperatures")
    if temps and temps != [0.0]:
        argv += ["--temperatures", ",".join("mix" if t is None else _fmt(t) for t in temps)]
    if bench.get("workload_temperatures"):
        argv += ["--temperature-mix",
                 ",".join(f"{_fmt(float(t))}:{_fmt(w)}" for t, w in bench["workload_temperatures"].items())]
    if bench.get("extra_body"):
        import json

        argv += ["--extra-body", json.dumps(bench["extra_body"])]
    for key, flag in _BENCH_BOOL.items():
        if bench.get(key):
            argv.append(flag)
    if bench.get("lossless") == "off":
        argv.append("--no-lossless")
    elif bench.get("lossless") == "full":
        argv.append("--check-lossless")
    return shlex.join(argv)


# SimulateConfig fields whose flag is not --field-name
_SIM_FLAGS = {"duration_s": "--duration"}


def simulate_command(cfg: dict[str, Any]) -> str:
    """The `specwise simulate` command for a recorded SimulateConfig (the options that are set)."""
    argv = ["specwise", "simulate"]
    for key, v in cfg.items():
        if key == "oracle":
            if v is False:
                argv.append("--no-oracle")
            continue
        if v is None or v is False:
            continue
        elif key == "temperature_mix":
            argv += ["--temperature-mix", ",".join(f"{_fmt(float(t))}:{_fmt(w)}" for t, w in v.items())]
        elif isinstance(v, list):
            argv += [_SIM_FLAGS.get(key, f"--{key.replace('_', '-')}"), ",".join(_fmt(x) for x in v)]
        else:
            argv += [_SIM_FLAGS.get(key, f"--{key.replace('_', '-')}"), _fmt(v)]
    return shlex.join(argv)


def plan_command(request: Any) -> str:
    """The `specwise plan` command for a PlanRequest (the options it was given)."""
    argv = ["specwise", "plan"]
    data = request.model_dump(mode="json", exclude_defaults=True)
    for key, v in data.items():
        if v is None:
            continue
        if key == "guard_schedule":
            import json

            argv += ["--guard-schedule", json.dumps(v)]
        else:
            argv += [f"--{key.replace('_', '-')}", _fmt(v)]
    return shlex.join(argv)


def _run_row(run: RunInput) -> InputRow:
    res = run.result
    versions = {"specwise": res.tool_version}
    for key in ("python", "platform"):
        if run.meta.get(key):
            versions[key] = str(run.meta[key])
    for role, info in run_servers(res).items():
        version = next((str(info[k]) for k in ("version", "vllm_version", "server_version") if info.get(k)), None)
        model = info.get("model") or info.get("target")
        if version or model:
            # e.g. "baseline: meta-llama/Llama-3.1-70B-Instruct, vLLM 0.33.0 V1"
            engine = " ".join(str(x) for x in (info.get("engine_generation"),) if x)
            versions[role] = ", ".join(x for x in (str(model) if model else None,
                                                    f"vLLM {version} {engine}".strip() if version else None) if x)
    cmd, note = run.command, ""
    recorded = run_config(res)
    bench = (run.meta.get("bench") if run.meta else None) or recorded.get("bench")
    if cmd is None and isinstance(bench, dict):
        cmd, note = bench_command(bench), "rebuilt from the run's recorded bench options"
    if cmd is None and isinstance(recorded.get("simulate"), dict):
        cmd, note = simulate_command(recorded["simulate"]), "rebuilt from the run's recorded simulate options"
    loads = sorted({c.load for c in res.cells if c.load is not None})
    temps = sorted({c.temperature for c in res.cells if c.temperature is not None})
    desc = (f"{len(res.cells)} cells, loads {', '.join(_fmt(x) for x in loads) or '-'}, temperatures "
            f"{', '.join(_fmt(t) for t in temps) or 'workload mix'}"
            + (f", {len(run.records)} request records" if run.records else "")
            + ("" if res.complete else ", INCOMPLETE (interrupted)"))
    if cmd is None and res.source == "simulated":
        note = "simulate's inputs are in the run's config"
    return InputRow("run", run.path or "(in memory)", run.source, desc, cmd, note, versions)


def provenance_rows(inputs: ReportInputs) -> list[InputRow]:
    """One row per input, in the order decision, workload, plans, profiles, estimates, runs, monitor."""
    rows: list[InputRow] = []
    d = inputs.decision
    if d is not None:
        rows.append(InputRow("decision", inputs.decision_path or "(in memory)", d.firmness,
                             f"verdict {d.verdict}, {len(d.rules)} rules, {len(d.evidence)} evidence items",
                             None, "specwise decide", {"specwise": d.tool_version}))
    if inputs.workload is not None:
        wl = inputs.workload
        rows.append(InputRow("workload", inputs.workload_path or "(from the decision)", "assumed",
                             f"{wl.name}: {len(wl.categories)} categories, {wl.load.kind} typical {wl.load.typical:g} "
                             f"/ peak {wl.load.peak:g}, SLO {wl.slo.metric}", None, "",
                             {"vLLM (deployment)": wl.deployment.vllm_version}))
    for path, plan in inputs.plans:
        s = plan.memory.settings
        rows.append(InputRow("plan", path or "(in memory)", "estimated",
                             f"{s.target_id} + {s.draft_id or s.method or 'no speculation'} on {s.gpus}x {s.gpu}, "
                             f"TP {s.tp}, target {s.target_quant}: {'fits' if plan.memory.fits else 'does not fit'}",
                             plan_command(plan.request), "rebuilt from the plan's request",
                             {"vLLM (accounting)": s.vllm_version}))
    for path, prof in inputs.profiles:
        rows.append(InputRow("acceptance profile", path or "(in memory)", str(getattr(prof.source, "value", prof.source)),
                             f"{prof.method} {prof.draft or ''} -> {prof.target or ''}: {len(prof.classes)} classes. "
                             + " ".join(prof.notes), None, ""))
    for path, est in inputs.estimates:
        rows.append(InputRow("estimate", path or "(in memory)", "estimated",
                             f"{est.method} {est.draft or ''} -> {est.target} on {est.context.num_requests} prompts, "
                             f"temperatures {', '.join(_fmt(t.temperature) for t in est.temperatures)}",
                             None, "", {"device": est.device, "dtype": est.dtype}))
    rows += [_run_row(r) for r in inputs.runs]
    for path, recs in inputs.monitor:
        rows.append(InputRow("monitor recording", path, "measured", f"{len(recs)} rows", None, ""))
    return rows

"""Typed inputs for report tests: a decision, measured and simulated runs, a plan and a profile.

Built from the schemas (and the real planner / default acceptance profile), never from hand-written JSON,
so the tests break when a schema changes in a way the report does not follow.
"""

from __future__ import annotations

import json
from pathlib import Path

from specwise.plan.planner import make_plan
from specwise.report.inputs import run_from_dict
from specwise.schemas.decision import Decision, EvidenceRef, MonitorThresholds, ShipConfig
from specwise.schemas.findings import Finding
from specwise.schemas.plan import PlanRequest
from specwise.schemas.results import (
    AcceptanceBreakdown,
    CellSummary,
    Comparison,
    Crossover,
    RequestRecord,
    ServerSpecDecodeRequestMetrics,
    SpeedupCI,
)
from specwise.schemas.workload import DeploymentSpec, LoadSpec, TrafficCategory, WorkloadProfile
from specwise.simulate.defaults import default_acceptance

LOADS = [1.0, 2.0, 4.0]
TEMPS = [0.0, 1.0]


def workload(name: str = "chat") -> WorkloadProfile:
    return WorkloadProfile(
        name=name,
        categories=[TrafficCategory(name="json", share=0.6, temperature=0.0),
                    TrafficCategory(name="creative", share=0.4, temperature=1.0)],
        load=LoadSpec(kind="qps", typical=2, peak=3),
        deployment=DeploymentSpec(target="meta-llama/Llama-3.1-70B-Instruct",
                                  draft="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", gpus=2, target_quant="fp8"),
    )


def decision(label: str = "chat", model: str = "meta-llama/Llama-3.1-70B-Instruct") -> Decision:
    rules = [
        Finding(code="fits", rule="Fit", status="pass", severity="info", threshold=0.7, observed=0.41,
                unit="of VRAM", source="estimated", message=f"{model} + draft fits on 2x H100 with FP8 weights",
                meaning="the draft costs 31% of the KV cache"),
        Finding(code="acceptance_below_break_even", rule=f"Acceptance vs break-even ({label})", status="fail",
                severity="warning", threshold=0.55, observed=0.48, source="measured",
                message="T=1.0 bucket acceptance 0.48 is below break-even 0.55",
                meaning="the creative share is slower with speculation"),
        Finding(code="load_crossover", rule="Load", status="unknown", severity="info", threshold=3.0, observed=None,
                unit="req/s", source="simulated", message="no measured crossover in range"),
    ]
    return Decision(
        tool_version="0.1.0", created_at="2026-12-03T17:00:00Z", verdict="BORDERLINE",
        headline=f"BORDERLINE for {label}: T=1.0 traffic is below break-even", firmness="measured",
        firmness_note="bench at 1-4 req/s", rules=rules,
        config=ShipConfig(vllm_version="0.33.0", speculative=True,
                          vllm_command=f"vllm serve {model} --tensor-parallel-size 2",
                          guard_schedule=[[1, 16, 4], [17, 256, 0]], guard_source="simulated"),
        monitor=MonitorThresholds(k=4, break_even_acceptance=0.55, break_even_acceptance_length=3.2,
                                  crossover_qps=6.0, crossover_source="simulated"),
        next_steps=["specwise bench --qps 3 --temperatures 1.0 --repeats 3"],
        evidence=[EvidenceRef(kind="run_result", path="run/", source="measured", firmness="measured",
                              command="specwise bench --qps 1,2,4", versions={"vllm": "0.33.0"})],
        workload=workload(label),
    )


def _cell(role, source, load, temp, speed=1.0):
    base = 0.02 * (1 + load / 4)
    f = 1 / speed
    return CellSummary(role=role, source=source, qps=load, temperature=temp, requests_ok=20,
                       ttft_p50_s=0.05 * (1 + load / 8), ttft_p99_s=0.09 * (1 + load / 8),
                       tpot_p50_s=base * f, tpot_p99_s=1.6 * base * f, e2e_p50_s=3 * base * f * 60,
                       e2e_p99_s=5 * base * f * 60,
                       acceptance_rate_metrics=(0.72 - 0.25 * temp) if role == "speculative" else None,
                       acceptance_rate_per_request_p50=(0.7 - 0.25 * temp) if role == "speculative" else None)


def run(source: str = "measured", crossover: float | None = 3.0):
    cells, comps = [], []
    for t in TEMPS:
        for q in LOADS:
            s = 1.4 - 0.15 * q - 0.2 * t
            cells += [_cell("baseline", source, q, t), _cell("speculative", source, q, t, s)]
            ci = SpeedupCI(value=s, ci_low=s - 0.08, ci_high=s + 0.08) if source == "measured" else SpeedupCI(value=s)
            comps.append(Comparison(qps=q, temperature=t, speedup_tpot_p50=ci, speedup_tpot_p99=ci,
                                    speedup_e2e_p50=ci, speedup_e2e_p99=ci))
    crossovers = []
    if crossover is not None:
        crossovers.append(Crossover(source=source, temperature=0.0, position="within", value=crossover,
                                    loads=LOADS, speedups=[1.25, 1.1, 0.8]))
    # a version-1 result, read the way the report reads files (any schema version the checkout knows)
    data = {"source": source, "tool_version": "0.1.0", "config": {"k": 4}, "findings": [f"{source} finding"],
            "cells": [c.model_dump(mode="json") for c in cells],
            "comparisons": [c.model_dump(mode="json") for c in comps],
            "crossovers": [c.model_dump(mode="json") for c in crossovers],
            "acceptance_breakdown": [AcceptanceBreakdown(temperature=t, requests=60, acceptance_rate_p10=0.3,
                                                         acceptance_rate_p50=0.6, acceptance_rate_p90=0.8)
                                     .model_dump(mode="json") for t in TEMPS]}
    return run_from_dict(data, "test run")


def run_dir(root: Path, prompt: str = "Tell me a story") -> Path:
    """A bench-style run directory: summary.json, records.jsonl (with per-request acceptance), config.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(run("measured").model_dump_json())
    (root / "config.json").write_text(json.dumps({"tool_version": "0.1.0", "python": "3.11", "platform": "Linux",
                                                  "bench": {"baseline_url": "http://127.0.0.1:1", "qps": LOADS,
                                                            "temperatures": TEMPS, "k": 4, "workload": prompt}}))
    with (root / "records.jsonl").open("w") as f:
        for i in range(40):
            t = TEMPS[i % 2]
            rate = (0.75 if t == 0 else 0.45) + 0.01 * (i % 7)
            rec = RequestRecord(request_id=f"r{i}", role="speculative", temperature=t, output_tokens=50,
                                prompt_id=prompt,
                                server_spec=ServerSpecDecodeRequestMetrics(draft_acceptance_rate=rate))
            f.write(json.dumps({"cell": f"speculative-{t}", "attempt": 0,
                                "record": rec.model_dump(mode="json")}) + "\n")
    return root


def plans():
    req = dict(target="meta-llama/Llama-3.1-70B-Instruct", draft="meta-llama/Llama-3.1-8B-Instruct", gpu="H100",
               gpus=2, max_model_len=8192)
    return [make_plan(PlanRequest(**req)), make_plan(PlanRequest(**req, target_quant="fp8"))]


def profile():
    return default_acceptance()

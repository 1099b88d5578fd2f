"""A report built from hostile user strings, shared by the render and browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from specwise.report import write_report
from specwise.report.inputs import ReportInputs, RunInput, read_run_dir
from specwise.schemas.acceptance import AcceptanceClass

from . import builders as B

# A script that would log an error if it ever ran: the browser test sees it in the console.
XSS = '<script>console.error("xss ran")</script>'
ALL_PLOTS = ("speedup", "latency", "acceptance", "histogram", "memory")


def hostile_inputs(root: Path) -> ReportInputs:
    run = read_run_dir(B.run_dir(root / "run", prompt=f"prompt {XSS}"))
    profile = B.profile()
    profile = profile.model_copy(update={"classes": [*profile.classes, AcceptanceClass(
        category=f"cat {XSS}", temperature=0.5, conditional=[0.6, 0.6])]})
    decision = B.decision(label=f"label {XSS}", model=f"model {XSS}")
    decision.workload = decision.workload.model_copy(update={"name": f"workload {XSS}"})
    return ReportInputs(decision=decision, workload=decision.workload,
                        runs=[run, RunInput(path=f"sim {XSS}.json", result=B.run("simulated", 5.0))],
                        plans=[(None, p) for p in B.plans()], profiles=[(None, profile)])


@pytest.fixture(scope="session")
def hostile_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    inputs = hostile_inputs(root)
    html, _, _ = write_report(inputs.decision, inputs, root / "report.html")
    return html

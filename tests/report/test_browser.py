"""The report in a real headless Chromium: no console errors, every plot drawn, not blank, readable without JS.

Chromium is Debian's ``chromium`` package (``make chromium``, a dependency of ``make test``); the test starts it
itself and drives it over the DevTools protocol (tests/report/chromium.py).
"""

from __future__ import annotations

import pytest

from .chromium import Browser, chromium_binary, ink, pixels
from .conftest import ALL_PLOTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_binary() is None,
                       reason="chromium is not installed: `make chromium` installs Debian's chromium package"),
]


async def test_console_capture_sees_errors_so_a_clean_report_means_something(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<p>x</p><script>console.error("boom")</script><img src="missing.png">')
    async with Browser(chromium_binary()) as b:
        await b.open(page.as_uri())
        errors = b.console_errors()
        assert any("boom" in e for e in errors)
        assert any("missing.png" in e or "Failed to load" in e for e in errors)
        await b.open(page.as_uri(), javascript=False)
        assert not any("boom" in e for e in b.console_errors())


async def test_report_loads_cleanly_draws_every_plot_and_reads_without_javascript(hostile_report):
    async with Browser(chromium_binary()) as b:
        for javascript in (True, False):
            await b.open(hostile_report.as_uri(), javascript=javascript)
            # no console errors or warnings: no failed loads, no CSP violations, and the <script> payloads in
            # the user strings never ran (they would log "xss ran")
            assert b.console_errors() == []
            badge = await b.query_all("#verdict-badge")
            assert len(badge) == 1 and "BORDERLINE" in await b.outer_html(badge[0])
            assert len(await b.query_all("table tbody tr.sev-warning")) == 1
            figures = await b.query_all("figure.plot")
            ids = [(await b.outer_html(f)).split('id="plot-', 1)[1].split('"', 1)[0] for f in figures]
            assert ids == list(ALL_PLOTS)
            assert len(await b.query_all("figure.plot svg")) == len(ALL_PLOTS)
            shot = pixels(await b.screenshot())
            assert shot.shape[1] >= 1200 and shot.shape[0] > 3000
            assert ink(shot) > 0.05, "the page screenshot is blank"
            for f in figures:
                x, y, w, h = (int(v) for v in await b.box(f))
                assert w > 300 and h > 150
                assert ink(shot[y:y + h, x:x + w]) > 0.03, f"plot at {x},{y} is blank"
            verdict = await b.box(badge[0])
            assert verdict[1] < 400, "the verdict is at the top of the page"

"""One renderer for simulated and measured results; tables fit the width they get."""

import io

from rich.console import Console

from specwise.cli.render import render_run_result
from specwise.schemas import CellSummary, Comparison, RunResult, Source, SpeedupCI
from specwise.schemas.findings import Finding


def _result(source: Source) -> RunResult:
    cells, comps = [], []
    for qps in (1.0, 2.0, 4.0, 8.0):
        for role in ("baseline", "speculative"):
            cells.append(CellSummary(role=role, source=source, qps=qps, temperature=0.7, requests_ok=100,
                                     requests_failed=0, ttft_p50_s=0.0312, ttft_p99_s=0.0921, tpot_p50_s=0.01234,
                                     tpot_p99_s=0.0201, itl_per_token_p50_s=0.011, itl_per_chunk_p50_s=0.021,
                                     e2e_p50_s=3.2109, e2e_p99_s=7.5, output_tokens_per_s=1234.5,
                                     acceptance_rate_metrics=0.61, mean_acceptance_length_metrics=2.3,
                                     acceptance_rate_per_request_p10=0.4, acceptance_rate_per_request_p50=0.6,
                                     acceptance_rate_per_request_p90=0.8, acceptance_source_per_request="server"))
        sp = SpeedupCI(value=1.8 - qps / 8, ci_low=1.7 - qps / 8, ci_high=1.9 - qps / 8)
        comps.append(Comparison(qps=qps, temperature=0.7, speedup_tpot_p50=sp, speedup_tpot_p99=sp,
                                speedup_e2e_p50=sp, speedup_e2e_p99=sp, speedup_ttft_p50=sp, throughput_ratio=1.1))
    return RunResult(source=source, tool_version="t", cells=cells, comparisons=comps,
                     findings=[Finding(code="few", severity="warning", message="few requests"),
                               Finding(code="not_lossless", severity="blocking", message="NOT LOSSLESS")])


def _render(result: RunResult, width: int) -> str:
    buf = io.StringIO()
    render_run_result(result, Console(file=buf, width=width))
    return buf.getvalue()


def test_both_sources_render_through_one_function_and_fit_80_columns():
    for source in (Source.measured, Source.simulated):
        text = _render(_result(source), 80)
        assert max(len(line) for line in text.splitlines()) <= 80
        assert "…" not in text
        assert f"Cells ({source.value}; latencies in ms" in text and "left out for width 80" in text
        assert "1.68x faster [1.57, 1.77]" in text and "TPOT P50" in text
        assert text.index("NOT LOSSLESS") < text.index("few requests")  # blocking first


def test_a_wide_console_gets_every_column():
    text = _render(_result(Source.measured), 250)
    assert "left out" not in text and "ITL/chunk P50" in text and "0.40-0.60-0.80 (server)" in text


def test_too_narrow_for_a_table_stacks_rows_instead_of_cutting_them():
    text = _render(_result(Source.measured), 30)
    assert "…" not in text
    assert "TTFT P99: 92.1" in text and "baseline 1 0.7" in text

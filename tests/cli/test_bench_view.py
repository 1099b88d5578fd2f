import io

from rich.console import Console

from specwise.cli.bench_view import LiveProgress, render_result
from specwise.schemas import CellSummary, Comparison, RequestRecord, RunResult, Source, SpeedupCI


def test_report_puts_findings_first_and_labels_units():
    cell = CellSummary(role="speculative", source=Source.measured, qps=2.0, temperature=0.7, requests_ok=5,
                       tpot_p50_s=0.012, acceptance_rate_metrics=0.61, acceptance_rate_per_request_p50=0.6,
                       acceptance_source_per_request="server")
    comp = Comparison(qps=2.0, temperature=0.7, speedup_tpot_p50=SpeedupCI(value=1.5, ci_low=1.2, ci_high=1.8),
                      speedup_tpot_p99=SpeedupCI(value=0.8), speedup_e2e_p50=SpeedupCI(value=None),
                      speedup_e2e_p99=SpeedupCI(value=1.1))
    result = RunResult(source=Source.measured, tool_version="t", cells=[cell], comparisons=[comp],
                       findings=["NOT LOSSLESS: outputs differ", "few requests"])
    buf = io.StringIO()
    render_result(result, "runs/x", Console(file=buf, width=250))
    text = buf.getvalue()
    assert text.index("NOT LOSSLESS") < text.index("Cells (measured; latencies in ms")
    assert "12.0" in text and "1.50x faster [1.20, 1.80]" in text and "1.25x slower" in text


def test_live_progress_tracks_the_current_cell():
    p = LiveProgress(Console(file=io.StringIO()))
    p.cell_started("speculative/r0/q2/t0", 3)
    p.request_done(RequestRecord(request_id="a", role="speculative", ttft_s=0.1, e2e_s=0.5, output_tokens=5))
    p.request_done(RequestRecord(request_id="b", role="speculative", error="x", error_kind="http_500"))
    rendered = p._render().plain
    assert "2/3 done" in rendered and "1 failed" in rendered and "100.0" in rendered


def test_report_states_the_measured_crossover_as_measured():
    from specwise.crossover import crossovers_from_comparisons

    def comp(qps, v, lo, hi):
        sp = SpeedupCI(value=v, ci_low=lo, ci_high=hi)
        return Comparison(qps=qps, temperature=0.0, speedup_tpot_p50=sp, speedup_tpot_p99=sp, speedup_e2e_p50=sp,
                          speedup_e2e_p99=sp)

    comps = [comp(2, 1.5, 1.4, 1.6), comp(4, 1.4, 1.3, 1.5), comp(12, 0.7, 0.6, 0.8)]
    result = RunResult(source=Source.measured, tool_version="t", comparisons=comps,
                       crossovers=crossovers_from_comparisons(comps, Source.measured))
    buf = io.StringIO()
    render_result(result, "runs/x", Console(file=buf, width=400))
    text = buf.getvalue()
    assert "Measured crossover (T=0; E2E P50 speedup = baseline / speculative): speculation stops being faster at " \
           "~8.57 req/s (interpolated between 4 and 12 req/s); between 4 and 12 req/s with 95% confidence" in text
    single = RunResult(source=Source.measured, tool_version="t", comparisons=comps[:1],
                       crossovers=crossovers_from_comparisons(comps[:1], Source.measured))
    buf = io.StringIO()
    render_result(single, "runs/x", Console(file=buf, width=400))
    assert "crossover" not in buf.getvalue()

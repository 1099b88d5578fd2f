import io
from pathlib import Path

from rich.console import Console

from specwise.bench.memory_check import check_server_memory
from specwise.bench.servers import parse_serve_command
from specwise.cli.bench_view import LiveProgress, memory_vs_plan, render_result
from specwise.cli.output import fmt_speedup
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


def test_report_prints_rows_and_the_reason_for_servers_not_compared():
    """Each launched server: rows (a deviation marked) or the one line saying why it was not compared."""
    log = (Path(__file__).resolve().parents[1] / "fixtures" / "vllm" / "startup-v1-smollm2-ngram.log").read_text()
    bf16 = parse_serve_command("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --dtype bfloat16 --max-model-len 512 "
                               "--speculative-config '{\"method\": \"ngram\", \"num_speculative_tokens\": 3}'")
    spec = check_server_memory("speculative", bf16, log, environ={"VLLM_CPU_KVCACHE_SPACE": "1"})
    base = check_server_memory("baseline", parse_serve_command("vllm serve my-private-model"), log, environ={})
    result = RunResult(source=Source.measured, tool_version="t", servers={
        "baseline": {"launched": True, "memory_check": base.model_dump(mode="json")},
        "speculative": {"launched": True, "memory_check": spec.model_dump(mode="json")},
    })
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(memory_vs_plan(result))
    text = console.export_text()
    assert "baseline: not compared with a plan: cannot plan the command:" in text
    assert "speculative: speculative budget of the plan for its command" in text
    assert "KV cache tokens" in text and "46,592" in text and "23,296" in text and "+100.0% (beyond ±10%)" in text
    assert memory_vs_plan(RunResult(source=Source.measured, tool_version="t",
                                    servers={"baseline": {"launched": False}})) is None


def test_zero_speedup_renders_instead_of_dividing_by_zero():
    """Seen on a real vLLM-CPU run: a baseline whose chunks all arrived in one read has TPOT 0, so speedup 0."""
    assert fmt_speedup(0.0) == "- (baseline 0)"
    assert "2.00x slower" in fmt_speedup(0.5) and "1.50x faster" in fmt_speedup(1.5)

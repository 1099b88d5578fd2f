"""Orchestration of ``specwise estimate``: load, estimate, summarise, validate, write the profile."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from specwise.estimate.pipeline import (
    Models,
    build_models,
    method_estimate,
    quantization_estimates,
    record_tokens,
    run_estimation,
    truncation_of,
)
from specwise.estimate.prompts import PromptRecord, prompt_token_ids
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.estimate import (
    ContextInfo,
    DistributionCheckResult,
    EstimateResult,
    EstimateSettings,
    MethodEstimate,
    Recommendation,
    ValidationEntry,
)

VALIDATION_FILE = "validation.jsonl"
PROFILE_FILE = "profile.json"
# docs/reference/theory-and-calibration.md §8.1: n-gram lookup runs on the CPU at ~0.59 % of a target forward, or 0 when
# overlapped; neglected in the batch-1 cost model.
NGRAM_COST_RATIO = 0.0
# GPU c is priced for when the user names none (the estimate itself usually runs on a CPU)
COST_RATIO_GPU = "H100"
RATE_DEFINITION = ("accepted draft tokens / drafted tokens (vLLM's spec_decode_num_accepted_tokens / "
                   "num_draft_tokens) at acceptance_rate_k drafts per step; steps without a proposal carry no "
                   "draft and are not counted")


def _progress(show: bool, total: int, description: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # progress goes to stderr so that --json on stdout stays clean (the stage does not import the CLI)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=Console(stderr=True),
                    disable=not show, transient=False)


def default_cost_ratio(models: Models, gpu: str | None = None, tp: int | None = None) -> tuple[float, str]:
    """c from the step-time model (:func:`specwise.perf.draft_cost_ratio`) for the pair served on ``tp`` x ``gpu``.

    The estimate runs anywhere (often a CPU), so the serving GPU and TP are inputs; without them c is priced
    for one H100 (``COST_RATIO_GPU``), TP 1, and the source says so. The draft runs on TP 1, batch 1.
    """
    if models.draft is None:
        return 0.0, "no draft"
    from specwise.catalog.models import get_gpu
    from specwise.estimate.models import deployment_spec
    from specwise.perf.steptime import CostRatio

    assumed = []
    if gpu is None:
        gpu = COST_RATIO_GPU
        assumed.append(f"GPU {COST_RATIO_GPU} (no --gpu)")
    if tp is None:
        tp = 1
        assumed.append("TP1 (no --tp)")
    target, target_quant = deployment_spec(models.target)
    draft, draft_quant = deployment_spec(models.draft)
    cost = CostRatio.compute(target, draft, get_gpu(gpu), tp, 1, target_quant, draft_quant, assumed=assumed)
    return round(cost.value, 4), f"estimated: {cost.basis}; --cost-ratio overrides"


def build_profile(est: MethodEstimate, settings: EstimateSettings) -> AcceptanceProfile:
    classes = []
    for t in est.temperatures:
        classes.append(AcceptanceClass(
            category="all", temperature=t.temperature, conditional=t.conditional_acceptance or [0.0],
            heterogeneity=t.heterogeneity, match_probability=t.match_probability,
            rate_p10=t.acceptance_rate_p10, rate_p50=t.acceptance_rate_p50, rate_p90=t.acceptance_rate_p90,
            num_requests=None))
        for cat in t.categories:
            classes.append(AcceptanceClass(
                category=cat.category, temperature=t.temperature, conditional=cat.conditional_acceptance or [0.0],
                heterogeneity=cat.heterogeneity, match_probability=cat.match_probability,
                rate_p10=cat.acceptance_rate_p10, rate_p50=cat.acceptance_rate_p50,
                rate_p90=cat.acceptance_rate_p90, num_requests=cat.num_requests))
    return AcceptanceProfile(
        target=settings.target, draft=est.draft if est.method == "draft_model" else None, method=est.method,
        verification=est.verification, source=Source.estimated, classes=classes,
        notes=[f"specwise estimate: k_max {settings.k_max}, conditional alphas at k_max; continuations at "
               f"T={','.join(f'{t:g}' for t in settings.context_temperatures)}"
               + (f"; top_p {settings.top_p:g}, top_k {settings.top_k}"
                  if truncation_of(settings).active else "")],
    )


def recommendations(methods: Sequence[MethodEstimate]) -> list[Recommendation]:
    out = []
    for j, t in enumerate(methods[0].temperatures):
        best: tuple[float, str, int] = (1.0, "none", 0)
        for m in methods:
            te = m.temperatures[j]
            if te.recommended_k and te.speedup_batch1_by_k[te.recommended_k - 1] > best[0]:
                best = (te.speedup_batch1_by_k[te.recommended_k - 1], m.method, te.recommended_k)
        note = "" if best[1] != "none" else "no k beats plain decoding at batch 1"
        if best[1] == "ngram":
            note = "n-gram cost taken as 0 (CPU lookup); under load verification of k tokens is not free"
        out.append(Recommendation(temperature=t.temperature, method=best[1], k=best[2],
                                  speedup_batch1=round(best[0], 4), note=note))
    return out


def validate_estimates(models: Models, settings: EstimateSettings, records: Sequence[PromptRecord],
                       methods: Sequence[MethodEstimate], temps: Sequence[float], out_dir: Path,
                       show_progress: bool, estimate_rows: Sequence[dict[str, Any]] = (),
                       verification_main: str = "argmax_draft") -> list[ValidationEntry]:
    """Measure accepted/drafted with real speculative decoding; pooled counters, appended per (method, T).

    With the estimate's per-request records (``estimate_rows``) each entry also compares the two sides
    request by request (:func:`specwise.estimate.validate.compare_ratios`): standard errors, a 95%
    interval of the difference and whether it lies within the 0.05 tolerance.
    """
    from specwise.estimate.pipeline import ngram_rules, request_counters
    from specwise.estimate.validate import compare_ratios, measure_acceptance, request_ratio_stderr

    tok = models.target.tokenizer
    prompts = [prompt_token_ids(r, tok, settings.wrap_plain_as_chat) for r in records]
    max_new = [min(r.max_tokens or settings.max_new_tokens, settings.max_new_tokens) for r in records]
    path = out_dir / VALIDATION_FILE
    done: dict[tuple[str, str, float, int], dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                done[(row["method"], row["verification"], row["temperature"], row["k"])] = row
            except (json.JSONDecodeError, KeyError):
                continue
    entries = []
    jobs = []
    for m in methods:
        for t in m.temperatures:
            if t.temperature in temps:
                jobs.append((m, t))
    with _progress(show_progress, len(jobs) * len(prompts), "validating") as progress:
        task = progress.add_task("validating", total=len(jobs) * len(prompts), rate="")
        for m, t in jobs:
            verification = "ngram" if m.method == "ngram" else m.verification
            key = (m.method, verification, t.temperature, t.acceptance_rate_k)
            if key not in done:
                started = time.perf_counter()
                produced = [0]

                def tick(n: int) -> None:
                    produced[0] += n
                    rate = produced[0] / max(time.perf_counter() - started, 1e-9)
                    progress.update(task, advance=1, rate=f"{rate:.1f} tok/s")

                c = measure_acceptance(models, prompts, verification, t.acceptance_rate_k, t.temperature, max_new,
                                       settings.seed + 1, settings.prompt_lookup_min, settings.prompt_lookup_max,
                                       on_request=tick, truncation=truncation_of(settings),
                                       rules=ngram_rules(settings), max_model_len=settings.max_model_len)
                row = {"method": m.method, "verification": verification, "temperature": t.temperature,
                       "k": t.acceptance_rate_k, "steps": c.steps, "drafts": c.drafts, "draft_tokens": c.draft_tokens,
                       "accepted": c.accepted, "accepted_per_pos": c.accepted_per_pos,
                       "stderr": c.acceptance_rate_stderr, "request_accepted": c.request_accepted,
                       "request_drafted": c.request_drafted}
                with path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                done[key] = row
            else:
                progress.update(task, advance=len(prompts))
            row = done[key]
            measured = row["accepted"] / row["draft_tokens"] if row["draft_tokens"] else None
            estimated = t.acceptance_rate
            err = None if measured is None or estimated is None else round(abs(measured - estimated), 5)
            kk = t.acceptance_rate_k
            drafts = row["drafts"]
            comparison = None
            estimated_stderr = None
            if estimate_rows:
                per_request = request_counters(estimate_rows, m.method, verification_main, settings, t.temperature, kk)
                est = [per_request.get(r.id, (0.0, 0.0)) for r in records]
                # the estimate's own error over requests, kept when no pairing is possible (a loop row
                # resumed from a file without per-request counters, or a side that drafted nothing)
                estimated_stderr = request_ratio_stderr([a for a, _ in est], [d for _, d in est])
                if row.get("request_drafted") is not None:
                    comparison = compare_ratios([a for a, _ in est], [d for _, d in est], row["request_accepted"],
                                                row["request_drafted"])
            entries.append(ValidationEntry(
                temperature=t.temperature, method=m.method, verification=verification, k=kk,
                acceptance_estimated=estimated, acceptance_measured=None if measured is None else round(measured, 5),
                abs_error=err, tokens_per_step_estimated=t.expected_tokens_per_step[kk - 1],
                tokens_per_step_measured=round((row["accepted"] + row["steps"]) / row["steps"], 4) if row["steps"] else None,
                per_position_estimated=_per_position_at_k(t, kk),
                per_position_measured=[round(a / drafts, 5) if drafts else 0.0 for a in row["accepted_per_pos"][:kk]],
                drafted_tokens=row["draft_tokens"], accepted_tokens=row["accepted"], steps=row["steps"],
                drafts=row["drafts"], measured_stderr=_measured_stderr(row),
                within_tolerance=None if err is None else err <= 0.05, num_requests=len(prompts),
                **{"estimated_stderr": None if estimated_stderr is None else round(estimated_stderr, 5),
                   **_comparison_fields(comparison)}))
    return entries


def _measured_stderr(row: dict[str, Any]) -> float | None:
    """The loop's standard error (clustered by request), or from its per-request counters when the row has none."""
    from specwise.estimate.validate import request_ratio_stderr

    se = row.get("stderr")
    if se is None and row.get("request_drafted") is not None:
        se = request_ratio_stderr(row["request_accepted"], row["request_drafted"])
    return None if se is None else round(se, 5)


def _comparison_fields(comparison: Any) -> dict[str, Any]:
    if comparison is None:
        return {}

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 5)

    return {"estimated_stderr": r(comparison.estimated_stderr), "difference": r(comparison.difference),
            "difference_stderr": r(comparison.difference_stderr),
            "difference_ci95": None if comparison.ci95 is None else [r(x) for x in comparison.ci95],
            "statistically_compatible": comparison.compatible, "ci_within_tolerance": comparison.ci_within(0.05)}


def _per_position_at_k(t: Any, k: int) -> list[float]:
    # per-position at k from the k_max profile: positions < k are unaffected by later drafts
    return [round(a, 5) for a in t.per_position_acceptance[:k]]


def distribution_checks(models: Models, settings: EstimateSettings, records: Sequence[PromptRecord],
                        methods: Sequence[MethodEstimate], samples: int = 3000) -> list[DistributionCheckResult]:
    """Chi-square the loop's first two tokens against the target (first-order tables on a vocab slice)."""
    from specwise.estimate.validate import check_output_distribution, first_order_tables

    prefix = prompt_token_ids(records[0], models.target.tokenizer, settings.wrap_plain_as_chat)
    draft_model = models.draft.model if models.draft is not None else None
    t_table, d_table, _ = first_order_tables(models.target.model, draft_model, prefix, 8, models.target.device)
    out = []
    temperature = max(settings.temperatures)
    if temperature <= 0:
        return out
    for m in methods:
        verification = "ngram" if m.method == "ngram" else m.verification
        start = next(iter(t_table))[0]
        check = check_output_distribution(t_table, d_table if verification != "ngram" else None, start, verification,
                                          temperature, samples, seed=settings.seed,
                                          lookup_prefix=([start, 1, start, 2] if verification == "ngram"
                                                         else None),
                                          truncation=truncation_of(settings))
        out.append(DistributionCheckResult(**check.__dict__))
    return out


def run(settings: EstimateSettings, records: Sequence[PromptRecord], device: str, dtype: Any, out_dir: Path,
        resume: bool, batch_size: int, verification: str, fixed_k: int | None, cost_ratio: float | None,
        validate: bool, validate_temperatures: Sequence[float], profile_out: Path | None,
        show_progress: bool = True, models: Models | None = None, cost_gpu: str | None = None,
        cost_tp: int | None = None) -> EstimateResult:
    started = time.perf_counter()
    models = models or build_models(settings, device, dtype)
    out_dir = Path(out_dir)
    total_tokens = [0]
    with _progress(show_progress, len(records), "estimating") as progress:
        task = progress.add_task("estimating", total=len(records), rate="")
        est_started = time.perf_counter()

        def on_batch(n_requests: int, n_tokens: int) -> None:
            total_tokens[0] += n_tokens
            rate = total_tokens[0] / max(time.perf_counter() - est_started, 1e-9)
            progress.update(task, advance=n_requests, rate=f"{rate:.1f} tok/s")

        rows = run_estimation(models, records, settings, out_dir, resume, batch_size, on_batch)
    est_elapsed = time.perf_counter() - est_started
    wanted = {r.id for r in records}
    rows = [r for r in rows if r["id"] in wanted]
    if cost_ratio is not None:
        c, c_source = cost_ratio, "assumed (--cost-ratio)"
    else:
        c, c_source = default_cost_ratio(models, cost_gpu, cost_tp)
    methods: list[MethodEstimate] = []
    draft_name = models.draft.description if models.draft is not None else None
    for method in settings.methods:
        est = method_estimate(rows, method, verification, settings,
                              c if method == "draft_model" else NGRAM_COST_RATIO,
                              c_source if method == "draft_model" else "n-gram lookup (CPU), neglected",
                              draft_name, fixed_k)
        if est is not None:
            methods.append(est)
    from specwise.errors import UserError

    if not methods:
        raise UserError("no request produced a continuation to estimate on")
    quant = []
    if settings.target_quantize or settings.draft_quantize:
        what = ", ".join(x for x in (f"target {settings.target_quantize}" if settings.target_quantize else "",
                                     f"draft {settings.draft_quantize}" if settings.draft_quantize else "") if x)
        quant = quantization_estimates(rows, settings, verification, methods, what)
    primary = methods[0]
    profile = build_profile(primary, settings)
    profile_path = Path(profile_out) if profile_out else out_dir / PROFILE_FILE
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(profile.model_dump_json(indent=2))
    validation: list[ValidationEntry] = []
    checks: list[DistributionCheckResult] = []
    if validate:
        validation = validate_estimates(models, settings, records, methods, validate_temperatures, out_dir, show_progress,
                                        rows, verification)
        checks = distribution_checks(models, settings, records, methods)
    n_tokens = sum(record_tokens(r) for r in rows)
    notes = []
    far = [t for t in settings.temperatures
           if min(abs(t - c) for c in settings.context_temperatures) > 0.25]
    if far:
        notes.append(f"temperatures {', '.join(f'{t:g}' for t in far)} are evaluated on text generated more than "
                     "0.25 away in temperature; acceptance depends on the text (add --context-temperatures)")
    result = EstimateResult(
        target=models.target.description, draft=draft_name, device=device, dtype=str(dtype).replace("torch.", ""),
        context=ContextInfo(num_requests=len(rows), num_tokens=n_tokens,
                            generated=sum(1 for r in rows if not r["from_response"]),
                            from_responses=sum(1 for r in rows if r["from_response"]),
                            context_temperatures=settings.context_temperatures),
        k_max=settings.k_max, top_p=settings.top_p, top_k=settings.top_k,
        acceptance_rate_definition=RATE_DEFINITION, method=primary.method,
        verification=primary.verification, temperatures=primary.temperatures, methods=methods,
        recommendations=recommendations(methods), quantization=quant, validation=validation,
        distribution_checks=checks, output_dir=str(out_dir), profile_path=str(profile_path),
        elapsed_s=round(time.perf_counter() - started, 2),
        tokens_per_s=round(n_tokens / est_elapsed, 2) if est_elapsed > 0 else None, notes=notes)
    (out_dir / "result.json").write_text(result.model_dump_json(indent=2))
    return result

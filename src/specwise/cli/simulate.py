"""``specwise simulate``: where does speculation stop paying as load grows, and which guard recovers it?"""

from __future__ import annotations

from pathlib import Path

import typer

ACCEPT_HELP = (
    "Per-position acceptance a_1..a_k with vLLM's meaning: the fraction of drafts whose i-th token was "
    "accepted (its per-position metric and synthetic_acceptance_rates), comma-separated, e.g. 0.7,0.5,0.35"
)


def parse_float_list(text: str, what: str, kind=None) -> list:
    """Comma-separated finite numbers; with ``kind`` (a :mod:`specwise.schemas.limits` type) each is also
    checked against its range."""
    import math

    from specwise.errors import UserError
    from specwise.schemas.limits import check_flag

    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(f"{what}: expected comma-separated numbers, got '{text}'") from None
    if not values:
        raise UserError(f"{what}: give at least one number")
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{what}: expected finite numbers, got '{text}'")
    return values if kind is None else check_flag(what, values, list[kind])


def acceptance_from_flags(
    *, rates: str | None, length: float | None, profile_path: Path | None, k: int, method: str,
    heterogeneity: float | None, target: str, draft: str | None,
):
    """The acceptance profile the flags describe (exactly one of rates / length / file, else a default)."""
    from pydantic import ValidationError

    from specwise.errors import UserError
    from specwise.schemas.acceptance import (
        AcceptanceClass,
        AcceptanceProfile,
        conditional_from_unconditional,
    )
    from specwise.schemas.base import Source
    from specwise.simulate.defaults import default_acceptance

    given = [x is not None for x in (rates, length, profile_path)]
    if sum(given) > 1:
        raise UserError("give only one of --acceptance-rates, --acceptance-length, --acceptance-profile")
    from specwise.schemas.limits import Heterogeneity, check_flag

    if heterogeneity is not None:
        check_flag("--heterogeneity", heterogeneity, Heterogeneity)
    het = 0.5 if heterogeneity is None else heterogeneity
    if profile_path is not None:
        if not profile_path.exists():
            raise UserError(f"acceptance profile '{profile_path}' not found")
        try:
            prof = AcceptanceProfile.model_validate_json(profile_path.read_text())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise UserError(f"{profile_path}: not an AcceptanceProfile JSON ({where + ': ' if where else ''}"
                            f"{err.get('msg')}); write one with `specwise estimate --profile-out`") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{profile_path}: not an AcceptanceProfile JSON ({str(exc).splitlines()[0]})") from None
        if heterogeneity is not None:
            prof = prof.model_copy(update={"classes": [c.model_copy(update={"heterogeneity": heterogeneity})
                                                       for c in prof.classes]})
        return prof
    if rates is not None:
        a = parse_float_list(rates, "--acceptance-rates")
        if any(not 0.0 <= x <= 1.0 for x in a):
            raise UserError("--acceptance-rates: each a_i must lie in [0, 1]")
        if any(b > x + 1e-9 for x, b in zip(a, a[1:])):
            raise UserError("--acceptance-rates are unconditional (vLLM per-position) rates and cannot rise "
                            "with position: a_(i+1) <= a_i")
        cond = conditional_from_unconditional(a)
        return AcceptanceProfile(target=target, draft=draft, method=method, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=cond, heterogeneity=het)],
                                 notes=[f"from --acceptance-rates {rates} (unconditional a_i, vLLM meaning)"])
    if length is not None:
        if not 1.0 <= length <= k + 1:
            raise UserError(f"--acceptance-length must lie in [1, k+1] = [1, {k + 1}] (it includes the bonus token)")
        alpha = iid_alpha_for_length(length, k)
        return AcceptanceProfile(target=target, draft=draft, method=method, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[alpha], heterogeneity=het)],
                                 notes=[f"i.i.d. alpha={alpha:.3f} solving E[L(k={k})]={length} (Leviathan Eq. 1)"])
    return method_default_acceptance(method, target, draft)


def iid_alpha_for_length(length: float, k: int) -> float:
    """alpha with (1 - alpha^(k+1)) / (1 - alpha) = length (theory-and-calibration.md §1.6), by bisection."""
    from specwise.schemas.acceptance import mean_acceptance_length

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if mean_acceptance_length([mid], k) < length:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def method_default_acceptance(method: str, target: str, draft: str | None):
    from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
    from specwise.schemas.base import Source
    from specwise.simulate.defaults import default_acceptance

    m = method.lower()
    if m in ("eagle", "eagle3", "mtp") or m.endswith("_mtp"):
        # SpecDecode-Bench EAGLE, Llama-3.1-8B, ShareGPT: conditional .60 .60 .65 .69 .73 (reference §1.6)
        return AcceptanceProfile(target=target, draft=draft, method=m, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[0.60, 0.60, 0.65, 0.69, 0.73],
                                                          heterogeneity=0.5)],
                                 notes=["ASSUMED: EAGLE on Llama-3.1-8B ShareGPT per-position shape "
                                        "(theory-and-calibration.md §1.6); measure yours with specwise estimate"])
    if m in ("ngram", "[ngram]", "ngram_gpu", "suffix"):
        # n-gram ShareGPT: P(match)=0.2 (SpecDecode-Bench simulator) and a_1=.13 -> alpha_1|match=.65,
        # then .77 .82 .87 .88 (reference §1.6)
        return AcceptanceProfile(target=target, draft=draft, method=m, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[0.65, 0.77, 0.82, 0.87, 0.88],
                                                          match_probability=0.2, heterogeneity=0.3)],
                                 notes=["ASSUMED: vLLM n-gram on ShareGPT, match-or-nothing mixture "
                                        "(theory-and-calibration.md §1.6)"])
    prof = default_acceptance(target, draft or "draft")
    return prof


def check_method_and_quant(method: str, quantization: str | None) -> str | None:
    """Refuse a method the simulator cannot price; the weight format as its canonical name (aliases as plan)."""
    from specwise.cli.plan import parse_quant
    from specwise.errors import UserError
    from specwise.perf.steptime import PRICED_METHODS, is_priced_method

    if not is_priced_method(method):
        raise UserError(f"--method {method[:40]!r} is not a speculative method the simulator prices; use one of "
                        f"{', '.join(PRICED_METHODS)}")
    return parse_quant(quantization, "--quantization").value if quantization else None


def _version_tuple(version: str) -> tuple[int, ...]:
    from specwise.errors import UserError

    try:
        return tuple(int(x) for x in version.split("+")[0].split(".")[:3])
    except ValueError:
        raise UserError(f"--vllm-version: expected a version like 0.33.0, got '{version}'") from None


def parse_temperature_mix(text: str | None):
    from pydantic import ValidationError

    from specwise.errors import UserError
    from specwise.simulate.workload import RequestClass

    if not text:
        return [RequestClass()]
    classes = []
    for part in text.split(","):
        try:
            t, w = part.split(":") if ":" in part else (part, "1")
            classes.append(RequestClass(temperature=float(t), weight=float(w)))
        except ValidationError as exc:
            msg = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
            raise UserError(f"--temperature-mix '{part}': {msg} (temperatures in [0, 2], weights > 0)") from None
        except ValueError:
            raise UserError(f"--temperature-mix: expected TEMP:WEIGHT,... e.g. 0:0.7,1.0:0.3, got '{text}'") from None
    return classes


def simulate(
    target: str = typer.Option(None, "--target", help="Target model (HF id or catalog name). Default: "
                               "meta-llama/Llama-3.1-70B-Instruct with Llama-3.2-1B-Instruct on 4x H100."),
    draft: str = typer.Option(None, "--draft", help="Draft model for method draft_model."),
    method: str = typer.Option(None, "--method", help="vLLM speculative method: draft_model, eagle, eagle3, mtp, "
                               "ngram, suffix, dflash (default: draft_model with --draft, else eagle3)."),
    gpu: str = typer.Option("H100", "--gpu", help="GPU name from the catalog (H100, H200, A100-80GB, ...)."),
    tp: int = typer.Option(None, "--tp", "--gpus", help="Tensor-parallel size of the target (GPUs)."),
    draft_tp: int = typer.Option(1, "--draft-tp", help="Tensor-parallel size of the draft model (1 or target TP)."),
    quantization: str = typer.Option(None, "--quantization", "-q", help="Target weights: fp8, awq, gptq-int4, ..."),
    vllm_version: str = typer.Option(None, "--vllm-version", help="vLLM version (memory accounting of the plan)."),
    k: int = typer.Option(None, "--k", help="num_speculative_tokens (default 4 for draft models, 3 otherwise)."),
    acceptance_rates: str = typer.Option(None, "--acceptance-rates", help=ACCEPT_HELP),
    acceptance_length: float = typer.Option(None, "--acceptance-length",
                                            help="Mean acceptance length (tokens per verify step, bonus included)."),
    acceptance_profile: Path = typer.Option(None, "--acceptance-profile",
                                            help="AcceptanceProfile JSON (from `specwise estimate`)."),
    heterogeneity: float = typer.Option(None, "--heterogeneity",
                                        help="Std-dev of the per-request log-odds shift of acceptance (default 0.5)."),
    prompt_len: str = typer.Option(None, "--prompt-len", help="N | uniform:LO:HI | normal:MEAN:CV | lognormal:MEAN:CV "
                                   "(default lognormal:355:1.0, ShareGPT mean)."),
    output_len: str = typer.Option(None, "--output-len", help="As --prompt-len (default lognormal:728:0.8)."),
    qps: str = typer.Option(None, "--qps", help="Comma-separated request rates to sweep (req/s)."),
    concurrency: str = typer.Option(None, "--concurrency", help="Closed loop instead of --qps: comma-separated "
                                    "numbers of requests kept in flight (speedup vs batch, as SpecDecode-Bench)."),
    arrival: str = typer.Option("poisson", "--arrival", help="poisson | gamma | constant"),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape (vllm bench --burstiness); <1 burstier."),
    temperature_mix: str = typer.Option(None, "--temperature-mix", help="TEMP:WEIGHT,... e.g. 0:0.7,1.0:0.3"),
    trace: Path = typer.Option(None, "--trace", help="Replay a JSONL/CSV trace (timestamp, prompt_tokens, "
                               "output_tokens); each --qps rescales its timestamps to that mean rate."),
    dataset: Path = typer.Option(None, "--dataset", help="JSONL/CSV of prompt_tokens, output_tokens pairs to "
                                 "sample lengths from (instead of --prompt-len/--output-len)."),
    duration: float = typer.Option(None, "--duration", help="Seconds of arrivals per QPS point (default 120)."),
    num_requests: int = typer.Option(None, "--num-requests", help="Requests per QPS point (instead of --duration)."),
    max_num_seqs: int = typer.Option(256, "--max-num-seqs"),
    max_num_batched_tokens: int = typer.Option(8192, "--max-num-batched-tokens"),
    kv_capacity_tokens: int = typer.Option(None, "--kv-capacity-tokens",
                                           help="Override the KV-cache capacity (tokens) from the memory plan."),
    step_time_model: Path = typer.Option(None, "--step-time-model", help="StepTimeModel JSON for the target "
                                         "(e.g. from `python -m specwise.perf.calibrate STEPS.csv`)."),
    no_oracle: bool = typer.Option(False, "--no-oracle", help="Skip the oracle policy (faster)."),
    k_sweep: str = typer.Option(None, "--k-sweep", help="Also simulate these fixed k values at every QPS, "
                                "e.g. 1,2,3,5 (speedup table per k)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(None, "--out", help="Also write the run in the shared RunResult schema (JSON) to FILE."),
    records_out: Path = typer.Option(None, "--records-out", help="Write per-request RequestRecords (JSONL; baseline "
                                     "and fixed k, every point) to FILE as the sweep runs."),
    json_out: bool = typer.Option(False, "--json", help="Print the sweep as JSON (fields in README)."),
) -> None:
    """Simulate baseline vs speculative serving over QPS: latency, throughput, crossover and guard."""
    from specwise.errors import UserError
    from specwise.schemas import limits as L
    from specwise.simulate import defaults as D
    from specwise.simulate.sweep import run_sweep
    from specwise.simulate.workload import ArrivalSpec, LengthDist, WorkloadSpec, check_request_budget

    L.check_flag("--seed", seed, L.Seed)
    L.check_flag("--burstiness", burstiness, L.Burstiness)
    if duration is not None:
        L.check_flag("--duration", duration, L.Seconds)
    if num_requests is not None:
        L.check_flag("--num-requests", num_requests, L.SimRequests)
    for flag, value in (("--max-num-seqs", max_num_seqs), ("--max-num-batched-tokens", max_num_batched_tokens),
                        ("--kv-capacity-tokens", kv_capacity_tokens)):
        if value is not None:
            L.check_flag(flag, value, L.Tokens)

    target, draft, method, tp = D.resolve_pair(target, draft, method, tp)
    quantization = check_method_and_quant(method, quantization)
    if method == "draft_model" and not draft:
        raise UserError("--method draft_model needs --draft MODEL")
    if k is None:
        k = D.DEFAULT_K if method == "draft_model" else 3
    if k < 1:
        raise UserError("--k must be >= 1 (k=0 is the baseline, which is always simulated)")
    if vllm_version:
        _version_tuple(vllm_version)
    qps_list = parse_float_list(qps, "--qps", L.Qps) if qps is not None else [1, 2, 4, 6, 8, 10, 12]
    if arrival not in ("poisson", "gamma", "constant"):
        raise UserError("--arrival must be poisson, gamma or constant")
    conc_list = None
    if concurrency is not None:
        if qps is not None or trace:
            raise UserError("give either --concurrency (closed loop) or --qps/--trace (open loop)")
        conc_list = sorted(set(parse_float_list(concurrency, "--concurrency", L.Concurrency)))
    for path, flag in ((trace, "--trace"), (dataset, "--dataset")):
        if path is not None and not path.exists():
            raise UserError(f"{flag} file '{path}' not found")
    if trace is not None:
        arrival = "trace"
        if qps is None:
            from specwise.simulate.workload import load_rows

            ts, _, _ = load_rows(str(trace), need_timestamp=True)
            native = (ts.size - 1) / ts[-1] if ts is not None and ts.size > 1 and ts[-1] > 0 else 1.0
            qps_list = [round(float(native), 6)]
    profile = acceptance_from_flags(rates=acceptance_rates, length=acceptance_length, profile_path=acceptance_profile,
                                    k=k, method=method, heterogeneity=heterogeneity, target=target, draft=draft)
    common = dict(method=method, draft_name=draft, draft_tp=draft_tp, quant=quantization,
                  max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                  kv_capacity_tokens=kv_capacity_tokens, vllm_version=vllm_version, k=k)
    base_dep, base_info = D.build_deployment(target, gpu, tp, speculative=False, **common)
    spec_dep, spec_info = D.build_deployment(target, gpu, tp, acceptance=profile, speculative=True, **common)
    if step_time_model is not None:
        custom = D.load_step_time_model(step_time_model)
        base_dep = base_dep.model_copy(update={"target": custom})
        spec_dep = spec_dep.model_copy(update={"target": custom})
        base_info["step_time_model"] = spec_info["step_time_model"] = str(step_time_model)
    if duration is None and num_requests is None:
        duration = 120.0
    check_request_budget(qps_list, duration if trace is None else None, num_requests)
    workload = WorkloadSpec(
        arrival=ArrivalSpec(kind=arrival, qps=qps_list[0], burstiness=burstiness),
        prompt_len=LengthDist.parse(prompt_len) if prompt_len else D.DEFAULT_PROMPT_LEN,
        output_len=LengthDist.parse(output_len) if output_len else D.DEFAULT_OUTPUT_LEN,
        classes=parse_temperature_mix(temperature_mix),
        num_requests=num_requests,
        duration_s=duration if num_requests is None and trace is None else None,
        trace_path=str(trace) if trace else None,
        dataset_path=str(dataset) if dataset else None,
    )
    inputs = {
        "baseline": base_info, "speculative": spec_info, "k": k,
        "acceptance": {"source": profile.source, "notes": profile.notes,
                       "classes": [c.model_dump() for c in profile.classes]},
        "workload": workload.model_dump(mode="json"),
        "step_time_model": spec_dep.target.model_dump(mode="json"),
        "draft_cost": spec_dep.draft.model_dump(mode="json", exclude={"draft_model"}),
        "seed": seed,
    }
    ks = None
    if k_sweep is not None:
        ks = sorted(set(parse_float_list(k_sweep, "--k-sweep", L.DraftK)))
    if records_out is not None:
        records_out.write_text("")
    result = run_sweep(base_dep, spec_dep, k=k, qps_list=sorted(qps_list), workload=workload, method=method,
                       seed=seed, with_oracle=not no_oracle, inputs=inputs, k_sweep=ks, concurrency_list=conc_list,
                       records_path=str(records_out) if records_out else None)
    if result.guard is not None and draft and "model" not in result.guard.speculative_config:
        # the guarded --speculative-config must be launchable as printed: draft_model needs its model
        cfg = result.guard.speculative_config
        result.guard.speculative_config = {"method": cfg.get("method"), "model": draft,
                                           **{key: v for key, v in cfg.items() if key != "method"}}
    if vllm_version and result.guard is not None and _version_tuple(vllm_version) < (0, 24):
        # vllm-speculative-decoding.md §1.7: the per-batch-size schedule exists from 0.24.0; V1 never honoured
        # disable_by_batch_size (removed in 0.17.0)
        result.notes.append(f"vLLM {vllm_version} has no num_speculative_tokens_per_batch_size (0.24.0+) and V1 "
                            "ignores disable_by_batch_size: the guard needs an upgrade; otherwise choose one k "
                            "for your peak load (see --k-sweep)")
    if out is not None:
        from specwise.simulate.sweep import to_run_result

        out.write_text(to_run_result(result).model_dump_json(indent=2))
    if json_out:
        from specwise.cli.output import emit_json

        emit_json(result)
        return
    render(result, profile, spec_info, k, method)


def render(result, profile, info: dict, k: int, method: str) -> None:
    from rich.table import Table

    from specwise.cli.output import console, fmt_s, fmt_speedup

    if not console.is_terminal:  # files and pipes get the full table instead of 80 squeezed columns
        from rich.console import Console

        console = Console(width=150)
    what = f"{info['target']} on {info['tp']}x {info['gpu']}"
    spec = f"{method}" + (f" {info['draft']}" if info.get("draft") else "") + f", k={k}"
    console.print(f"[bold]specwise simulate[/bold]: {what}; speculative = {spec}")
    if info.get("cost_ratio") is not None:
        from specwise.perf.steptime import format_cost_ratio

        console.print(f"Draft cost at batch 1 (estimated): c = {format_cost_ratio(info['cost_ratio'])} "
                      f"({info['cost_ratio_basis']}); every step is priced by the same step-time model",
                      highlight=False)
    console.print(f"KV cache: {info['kv_capacity_tokens']:,} tokens ({info['kv_capacity_source']}). "
                  f"Acceptance ({profile.source}): " + "; ".join(profile.notes or ["see --json inputs.acceptance"]))
    t = Table(title="Simulated latency per QPS: TTFT and TPOT in ms, E2E in s; p50 unless marked p99",
              caption="TTFT = arrival -> first token; TPOT = (E2E - TTFT)/(tokens - 1); E2E = arrival -> last "
                      "token; tok/s = output tokens per second of run; batch = mean running sequences; "
                      "* = saturated (queue keeps growing). speedup = baseline / speculative. Source: simulated.")
    def load(p) -> str:
        return f"{p.qps:g}" if p.qps is not None else f"c={p.concurrency}"

    for col in ("QPS", "server", "TTFT", "TTFT p99", "TPOT", "TPOT p99", "E2E", "E2E p99", "tok/s", "batch",
                "speedup E2E", "speedup TPOT"):
        t.add_column(col, justify="right", no_wrap=True)
    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for p in result.points:
        for name, m in (("baseline", p.baseline), (f"spec k={k}", p.speculative)):
            first = name == "baseline"
            t.add_row(
                load(p) if first else "", name + (" *" if m.saturated else ""), fmt_s(m.ttft_p50_s),
                fmt_s(m.ttft_p99_s), fmt_s(m.tpot_p50_s), fmt_s(m.tpot_p99_s), sec(m.e2e_p50_s), sec(m.e2e_p99_s),
                f"{m.output_tokens_per_s:.0f}" if m.output_tokens_per_s is not None else "-",
                f"{m.mean_batch_size:.0f}" if m.mean_batch_size is not None else "-",
                "" if first else fmt_speedup(p.speedup_e2e_p50), "" if first else fmt_speedup(p.speedup_tpot_p50),
                end_section=not first,
            )
    console.print(t)
    if result.crossover_concurrency is not None:
        console.print(f"[bold]Crossover[/bold]: speculation (fixed k={k}) turns slower than no speculation at "
                      f"~{result.crossover_concurrency:.0f} requests in flight (closed loop, simulated).")
    elif result.crossover_qps is not None:
        console.print(f"[bold]Crossover[/bold]: speculation (fixed k={k}) turns slower than no speculation at "
                      f"~{result.crossover_qps:.1f} req/s, where the speculative server runs "
                      f"~{result.crossover_batch_size:.0f} sequences per step (simulated).")
    else:
        console.print("[bold]Crossover[/bold]: none in the simulated load range.")
    if result.baseline_saturation_qps is not None:
        console.print(f"Baseline saturates (queue grows) at {result.baseline_saturation_qps:g} req/s.")
    for n in result.notes:
        console.print(f"note: {n}")
    if result.k_sweep:
        ks = sorted({p.k for p in result.k_sweep})
        kt = Table(title="Fixed k: E2E p50 speedup vs no speculation (>1 = speculation faster; * = saturated)")
        kt.add_column("QPS (req/s)", justify="right")
        for kk in ks:
            kt.add_column(f"k={kk}", justify="right")
        for q in sorted({(p.qps, p.concurrency) for p in result.k_sweep}, key=lambda t: (t[0] or 0, t[1] or 0)):
            row = {p.k: p for p in result.k_sweep if (p.qps, p.concurrency) == q}
            kt.add_row(load(row[ks[0]]), *[fmt_speedup(row[kk].speedup_e2e_p50) + (" *" if row[kk].saturated else "")
                                   for kk in ks])
        console.print(kt)
    g = result.guard
    if g is None:
        return
    gt = Table(title="Guard: E2E p50 speedup vs no speculation (>1 = speculation faster)",
                caption="fixed = k always; guard = recommended schedule; oracle = best k per step (upper bound).")
    for col in ("QPS (req/s)", f"fixed k={k}", "guard", "oracle", "guard mean k", "oracle mean k"):
        gt.add_column(col, justify="right")
    for p in result.points:
        gt.add_row(load(p), fmt_speedup(p.speedup_e2e_p50), fmt_speedup(p.guard_speedup_e2e_p50),
                   fmt_speedup(p.oracle_speedup_e2e_p50),
                   f"{p.guard.mean_k:.2f}" if p.guard and p.guard.mean_k is not None else "-",
                   f"{p.oracle.mean_k:.2f}" if p.oracle and p.oracle.mean_k is not None else "-")
    console.print(gt)
    import json as _json

    console.print("[bold]Recommended guard[/bold] (vLLM 0.24+; closed-loop model, mean context "
                  f"{g.mean_context_tokens:.0f} tokens): --speculative-config "
                  f"'{_json.dumps(g.speculative_config)}'", soft_wrap=True)
    if g.disable_by_batch_size is not None:
        console.print(f"V0 / ArcticInference equivalent: disable_by_batch_size={g.disable_by_batch_size} "
                      "(ignored by vLLM V1).")
    console.print(f"Worst E2E p50 speedup over the sweep: fixed {fmt_speedup(g.min_speedup_fixed)}, guard "
                  f"{fmt_speedup(g.min_speedup_guard)}, oracle {fmt_speedup(g.min_speedup_oracle)}.")

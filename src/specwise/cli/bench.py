"""``specwise bench``: A/B load test of a baseline and a speculative endpoint over QPS x temperature."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from specwise.errors import UserError


def bench(
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline endpoint URL (already running)."),
    speculative: Optional[str] = typer.Option(None, "--speculative", help="Speculative endpoint URL."),
    baseline_cmd: Optional[str] = typer.Option(None, "--baseline-cmd",
                                               help="Command that starts the baseline server (run first)."),
    speculative_cmd: Optional[str] = typer.Option(None, "--speculative-cmd",
                                                  help="Command that starts the speculative server (run second)."),
    qps: str = typer.Option("1,2,4,8", "--qps", help="Request rates (req/s), comma-separated, or 'sweep' "
                            "(double from 1 req/s until the server saturates)."),
    temperatures: str = typer.Option("0,0.7", "--temperatures",
                                     help="Sampling temperatures; 'mix' = the workload's temperature distribution."),
    workload: str = typer.Option("chat", "--workload", help="chat|code|summarization|json_extraction|rag_qa|"
                                 "mixed|random (synthetic), a weighted mix 'chat:3,code:1', or a ShareGPT .json / Spec-Bench or plain "
                                 ".jsonl file."),
    temperature_mix: Optional[str] = typer.Option(
        None, "--temperature-mix", help="Temperature mix of the traffic, TEMP:WEIGHT,... e.g. 0:0.3,0.7:0.7: what "
        "'mix' cells sample from (same flag as simulate)."),
    workload_temperatures: Optional[str] = typer.Option(None, "--workload-temperatures", hidden=True,
                                                        help="Old name of --temperature-mix."),
    num_requests: Optional[int] = typer.Option(None, "--num-requests", help="Requests per cell (default 100)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds of traffic per cell instead."),
    repeats: int = typer.Option(1, "--repeats", help="Repeat every cell; comparisons report medians and CIs."),
    k: Optional[int] = typer.Option(None, "--k", help="Draft length (default: from the server's config or "
                                    "/metrics)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name to request (default: /v1/models)."),
    api: str = typer.Option("chat", "--api", help="chat (/v1/chat/completions) or completions (/v1/completions)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env",
                                              help="Environment variable holding the API key (never stored)."),
    out: Optional[str] = typer.Option(None, "--out", help="Run directory (default runs/bench-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the bench run already in --out (without "
                                   "it, --out must be new or empty)."),
    check_lossless: bool = typer.Option(False, "--check-lossless",
                                        help="Full losslessness check (default: a short one every run)."),
    no_lossless: bool = typer.Option(False, "--no-lossless", help="Skip the losslessness check."),
    arrival: str = typer.Option("poisson", "--arrival", help="poisson|constant|gamma|closed_loop."),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape (1 = Poisson, < 1 burstier)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Closed loop: requests in flight."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Force max_tokens of every request."),
    production_temperature: Optional[float] = typer.Option(
        None, "--production-temperature", help="Temperature you serve at (warns when cells are all below it)."),
    ignore_eos: bool = typer.Option(False, "--ignore-eos", help="Send ignore_eos (acceptance then unrepresentative)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="top_p sent with every request (as you serve; "
                                          "verification truncates the target to it, which changes acceptance)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="top_k sent with every request (-1 = all tokens)."),
    extra_body: Optional[str] = typer.Option(None, "--extra-body", help="JSON object of further request fields for "
                                             "both arms, e.g. '{\"min_p\": 0.05}'."),
    token_counting: str = typer.Option("auto", "--token-counting", help="auto|usage|token_ids|logprobs|text."),
    return_token_ids: bool = typer.Option(False, "--return-token-ids",
                                          help="Also ask vLLM (0.10.2+) for token ids per chunk."),
    seed: int = typer.Option(0, "--seed", help="Seed of prompts and arrival schedules (same for both arms)."),
    timeout: float = typer.Option(600.0, "--timeout", help="Per-request limit, seconds."),
    error_budget: float = typer.Option(0.2, "--error-budget", help="Stop a cell when this share failed."),
    startup_timeout: float = typer.Option(1800.0, "--startup-timeout", help="Seconds to wait for /health."),
    warmup: int = typer.Option(2, "--warmup", help="Unrecorded warm-up requests per arm."),
    like_for_like: bool = typer.Option(False, "--like-for-like", help="Also launch the baseline with the "
                                       "speculative arm's other engine settings forced (needs --baseline-cmd)."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU of launched servers (catalog name): their startup "
                                      "memory is compared with the plan for each command."),
    gpu_memory_gib: Optional[float] = typer.Option(None, "--gpu-memory-gib",
                                                   help="Total memory of a GPU not in the catalog (GiB)."),
    plan_file: Optional[str] = typer.Option(None, "--plan", help="`specwise plan --json` output to compare "
                                            "launched servers' startup memory with (else derived per command)."),
    client_workers: str = typer.Option("auto", "--client-workers",
                                       help="Client processes per arm (shard many concurrent streams); auto = one "
                                       "per 20,000 chunks/s of peak offered load (1000 over https), at most CPUs-1."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON of BenchConfig, or a run "
                                               "directory's config.json (repeats that run); flags given override it."),
    json_out: bool = typer.Option(False, "--json", help="Print the RunResult as JSON."),
) -> None:
    """A/B load test: the same requests on the same arrival schedule to a baseline and a speculative endpoint,
    per QPS x temperature, with acceptance from /metrics deltas and per request."""
    import time

    from specwise.bench.client import run_async
    from specwise.bench.runner import BenchConfig, run_bench
    from specwise.cli.options import MIX_WORDS, build_config, parse_list, parse_mix
    from specwise.cli.output import console, emit_json, err_console

    if api not in ("chat", "completions"):
        raise UserError("--api must be 'chat' or 'completions'")
    if arrival not in ("poisson", "constant", "gamma", "closed_loop"):
        raise UserError("--arrival must be poisson, constant, gamma or closed_loop")
    if token_counting not in ("auto", "usage", "token_ids", "logprobs", "text"):
        raise UserError("--token-counting must be auto, usage, token_ids, logprobs or text")
    if client_workers.strip() == "auto":
        workers = None
    elif client_workers.strip().isdigit() and int(client_workers) >= 1:
        workers = int(client_workers)
    else:
        raise UserError(f"--client-workers must be 'auto' or a whole number >= 1, not {client_workers!r}")
    body: dict = {}
    if extra_body:
        import json

        try:
            body = json.loads(extra_body)
        except (ValueError, RecursionError) as exc:
            if not isinstance(exc, json.JSONDecodeError):
                raise UserError("--extra-body is nested too deep; give a flat object like '{\"min_p\": 0.05}'") \
                    from None
            raise UserError(f"--extra-body is not valid JSON ({exc.msg}); give an object like '{{\"min_p\": 0.05}}'") \
                from exc
        if not isinstance(body, dict):
            raise UserError("--extra-body must be a JSON object, e.g. '{\"min_p\": 0.05}'")
    if num_requests is not None and duration is not None:
        raise UserError("give --num-requests or --duration, not both")
    if resume and overwrite:
        raise UserError("--resume continues the run in --out, --overwrite replaces it: give one")
    if temperature_mix and workload_temperatures:
        raise UserError("give --temperature-mix (--workload-temperatures is its old name), not both")
    mix_flag = ("workload_temperatures", workload_temperatures) if workload_temperatures \
        else ("temperature_mix", temperature_mix)
    flags = {
        "baseline_url": ("baseline", baseline), "speculative_url": ("speculative", speculative),
        "baseline_cmd": ("baseline_cmd", baseline_cmd), "speculative_cmd": ("speculative_cmd", speculative_cmd),
        "model": ("model", model), "api": ("api", api), "api_key_env": ("api_key_env", api_key_env),
        "qps": ("qps", None if qps.strip() == "sweep" else parse_list(qps, "--qps")),
        "temperatures": ("temperatures", parse_list(temperatures, "--temperatures", words=MIX_WORDS)),
        "workload": ("workload", workload),
        "workload_temperatures": (mix_flag[0], parse_mix(mix_flag[1], "--temperature-mix")),
        "num_requests": ("num_requests", num_requests), "duration_s": ("duration", duration),
        "arrival": ("arrival", arrival), "burstiness": ("burstiness", burstiness),
        "concurrency": ("concurrency", concurrency), "repeats": ("repeats", repeats), "k": ("k", k),
        "seed": ("seed", seed), "max_tokens": ("max_tokens", max_tokens), "timeout_s": ("timeout", timeout),
        "error_budget": ("error_budget", error_budget),
        "production_temperature": ("production_temperature", production_temperature),
        "ignore_eos": ("ignore_eos", ignore_eos), "token_counting": ("token_counting", token_counting),
        "request_token_ids": ("return_token_ids", return_token_ids), "top_p": ("top_p", top_p),
        "top_k": ("top_k", top_k), "extra_body": ("extra_body", body),
        "lossless": ("no_lossless" if no_lossless else "check_lossless",
                     "off" if no_lossless else ("full" if check_lossless else "quick")),
        "startup_timeout_s": ("startup_timeout", startup_timeout), "warmup_requests": ("warmup", warmup),
        "client_workers": ("client_workers", workers), "like_for_like": ("like_for_like", like_for_like),
        "gpu": ("gpu", gpu), "gpu_memory_gib": ("gpu_memory_gib", gpu_memory_gib), "plan_file": ("plan_file", plan_file),
    }
    cfg = build_config(BenchConfig, flags, config_file, section="bench")
    out_dir = out or str(Path("runs") / time.strftime("bench-%Y%m%d-%H%M%S"))
    from specwise.cli.bench_view import LiveProgress, render_result

    progress = LiveProgress(err_console if json_out else console)
    try:
        with progress:
            result = run_async(run_bench(cfg, out_dir, resume=resume, overwrite=overwrite, progress=progress))
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/yellow]: everything measured is in {out_dir}; "
                          f"continue with the same options and --resume --out {out_dir}")
        raise SystemExit(130) from None
    if json_out:
        emit_json(result)
    else:
        render_result(result, out_dir, console)

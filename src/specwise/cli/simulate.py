"""``specwise simulate``: where does speculation stop paying as load grows, and which guard recovers it?

Flags (or ``--config FILE``) become a :class:`~specwise.schemas.configs.SimulateConfig`; the stage
(:func:`specwise.simulate.stage.run`) returns the shared ``RunResult``; :mod:`specwise.cli.render` prints it.
"""

from __future__ import annotations

from pathlib import Path

import typer

ACCEPT_HELP = (
    "Per-position acceptance a_1..a_k with vLLM's meaning: the fraction of drafts whose i-th token was "
    "accepted (its per-position metric and synthetic_acceptance_rates), comma-separated, e.g. 0.7,0.5,0.35"
)


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
    temperature_mix: str = typer.Option(None, "--temperature-mix", help="Temperature mix of the traffic, "
                                        "TEMP:WEIGHT,... e.g. 0:0.7,1.0:0.3 (same flag as bench)."),
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
    config_file: Path = typer.Option(None, "--config", help="YAML/JSON of SimulateConfig (the fields are the flags' "
                                     "names with _); flags given override it. --out writes the resolved one."),
    out: Path = typer.Option(None, "--out", help="Also write the RunResult (JSON) to FILE, and the resolved config "
                             "to FILE's stem + .config.json."),
    records_out: Path = typer.Option(None, "--records-out", help="Write per-request RequestRecords (JSONL; baseline "
                                     "and fixed k, every point) to FILE as the sweep runs."),
    json_out: bool = typer.Option(False, "--json", help="Print the RunResult as JSON (the schema bench prints)."),
    calibration: str = typer.Option(None, "--calibration", help="Named calibration from the catalog (`specwise "
                                    "catalog --calibrations`), 'none' for the roofline; default: the one matching "
                                    "GPU, vLLM version and model shapes."),
    calibration_host: str = typer.Option(None, "--calibration-host", help="Host class of the calibration's draft "
                                         "pass, e.g. 'slow' (`specwise catalog --calibrations` lists them); "
                                         "default: the class it was fitted on."),
    like_for_like: bool = typer.Option(False, "--like-for-like", help="Run the baseline in the speculative "
                                       "server's engine mode (the effect of speculation alone)."),
    async_scheduling: bool = typer.Option(None, "--async-scheduling/--no-async-scheduling", help="Launch flag of "
                                          "the speculative server (default: the version's default for the method)."),
) -> None:
    """Simulate baseline vs speculative serving over QPS: latency, throughput, crossover and guard."""
    from specwise.cli.options import build_config, parse_ints, parse_mix, parse_numbers, write_config
    from specwise.cli.plan import parse_quant
    from specwise.schemas.configs import SimulateConfig
    from specwise.simulate.stage import run

    flags = {
        "target": ("target", target), "draft": ("draft", draft), "method": ("method", method), "gpu": ("gpu", gpu),
        "tp": ("tp", tp), "draft_tp": ("draft_tp", draft_tp),
        "vllm_version": ("vllm_version", vllm_version), "k": ("k", k),
        "quantization": ("quantization", parse_quant(quantization, "--quantization").value if quantization else None),
        "acceptance_rates": ("acceptance_rates", parse_numbers(acceptance_rates, "--acceptance-rates")
                             if acceptance_rates is not None else None),
        "acceptance_length": ("acceptance_length", acceptance_length),
        "acceptance_profile": ("acceptance_profile", str(acceptance_profile) if acceptance_profile else None),
        "heterogeneity": ("heterogeneity", heterogeneity), "prompt_len": ("prompt_len", prompt_len),
        "output_len": ("output_len", output_len), "qps": ("qps", parse_numbers(qps, "--qps") if qps is not None else None),
        "concurrency": ("concurrency", parse_ints(concurrency, "--concurrency") if concurrency is not None else None),
        "arrival": ("arrival", arrival), "burstiness": ("burstiness", burstiness),
        "temperature_mix": ("temperature_mix", parse_mix(temperature_mix, "--temperature-mix")),
        "trace": ("trace", str(trace) if trace else None), "dataset": ("dataset", str(dataset) if dataset else None),
        "duration_s": ("duration", duration), "num_requests": ("num_requests", num_requests),
        "max_num_seqs": ("max_num_seqs", max_num_seqs),
        "max_num_batched_tokens": ("max_num_batched_tokens", max_num_batched_tokens),
        "kv_capacity_tokens": ("kv_capacity_tokens", kv_capacity_tokens),
        "step_time_model": ("step_time_model", str(step_time_model) if step_time_model else None),
        "oracle": ("no_oracle", not no_oracle),
        "k_sweep": ("k_sweep", parse_ints(k_sweep, "--k-sweep") if k_sweep is not None else None), "seed": ("seed", seed),
        "calibration": ("calibration", calibration), "calibration_host": ("calibration_host", calibration_host),
        "like_for_like": ("like_for_like", like_for_like),
        "async_scheduling": ("async_scheduling", async_scheduling),
    }
    config = build_config(SimulateConfig, flags, config_file)
    result = run(config, records_path=str(records_out) if records_out else None)
    if out is not None:
        out.write_text(result.model_dump_json(indent=2))
        if result.inputs.simulate is not None:
            write_config(result.inputs.simulate, out)
    if json_out:
        from specwise.cli.output import emit_json

        emit_json(result)
        return
    from specwise.cli.output import console
    from specwise.cli.render import render_run_result

    render_run_result(result, console, footer=f"Written: {out}" if out else None)

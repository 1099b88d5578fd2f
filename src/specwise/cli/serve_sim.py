"""``specwise serve-sim``: a virtual vLLM endpoint on 127.0.0.1 driven by the serving simulator."""

from __future__ import annotations

from pathlib import Path

import typer


def serve_sim(
    port: int = typer.Option(8000, "--port", help="TCP port (0 = any free port; the bound port is printed)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (keep 127.0.0.1 unless you mean it)."),
    model_name: str = typer.Option(None, "--served-model-name", help="Model name clients send (default: --target)."),
    target: str = typer.Option(None, "--target", help="Target model whose step time is simulated "
                               "(default meta-llama/Llama-3.1-70B-Instruct on 4x H100 with a Llama-3.2-1B draft)."),
    draft: str = typer.Option(None, "--draft", help="Draft model (method draft_model)."),
    method: str = typer.Option(None, "--method", help="draft_model, eagle, eagle3, mtp, ngram, suffix, dflash."),
    gpu: str = typer.Option("H100", "--gpu"),
    tp: int = typer.Option(None, "--tp", "--gpus"),
    draft_tp: int = typer.Option(1, "--draft-tp"),
    quantization: str = typer.Option(None, "--quantization", "-q"),
    k: int = typer.Option(3, "--k", help="num_speculative_tokens; 0 serves a baseline without speculation."),
    acceptance_rates: str = typer.Option(None, "--acceptance-rates", help="Unconditional per-position a_1..a_k "
                                         "(vLLM's per-position metric meaning), e.g. 0.7,0.5,0.35."),
    acceptance_length: float = typer.Option(None, "--acceptance-length", help="Mean acceptance length (bonus incl.)."),
    acceptance_profile: Path = typer.Option(None, "--acceptance-profile", help="AcceptanceProfile JSON "
                                            "(temperature classes: each request's temperature picks its class)."),
    heterogeneity: float = typer.Option(None, "--heterogeneity", help="Per-request log-odds spread (default 0.5)."),
    time_scale: float = typer.Option(1.0, "--time-scale", help="Wall seconds per simulated second (0.1 = 10x faster)."),
    default_max_tokens: int = typer.Option(256, "--default-max-tokens", help="Output tokens when max_tokens is absent."),
    output_len: str = typer.Option(None, "--output-len", help="Natural stop length distribution (finish_reason=stop); "
                                   "default: generate max_tokens."),
    max_num_seqs: int = typer.Option(256, "--max-num-seqs"),
    max_num_batched_tokens: int = typer.Option(8192, "--max-num-batched-tokens"),
    kv_capacity_tokens: int = typer.Option(None, "--kv-capacity-tokens"),
    step_time_model: Path = typer.Option(None, "--step-time-model", help="StepTimeModel JSON for the target."),
    vllm_version: str = typer.Option("0.33.0", "--vllm-version", help="Reported by /version."),
    metrics_names: str = typer.Option("v1", "--metrics-names", help="v1 (default) or v0 spec-decode metric names."),
    per_request: str = typer.Option("none", "--per-request-spec-decode-metrics",
                                    help="none | summary | detailed (vLLM 0.29+ metrics.speculative_decoding)."),
    seed: int = typer.Option(0, "--seed"),
    config_file: Path = typer.Option(None, "--config", help="YAML/JSON of SimulateConfig (e.g. a simulate run's "
                                     ".config.json): its deployment and acceptance fields; flags given override it."),
    admin: bool = typer.Option(False, "--admin", help="Serve POST /admin/acceptance to change acceptance mid-run "
                               "(body {\"acceptance_rates\": [a_1, ..]}), e.g. to try `specwise monitor`."),
) -> None:
    """Serve an OpenAI-compatible endpoint whose timing and acceptance come from the simulator."""
    import asyncio

    from typing import Annotated

    from pydantic import Field

    from specwise.cli.options import build_config, given_on_command_line, parse_numbers
    from specwise.cli.plan import parse_quant
    from specwise.errors import UserError
    from specwise.schemas import limits as L
    from specwise.schemas.configs import SimulateConfig
    from specwise.simulate.serve_sim import ServeSimConfig, SimServer, start_server
    from specwise.simulate.stage import resolve
    from specwise.simulate.workload import LengthDist

    if metrics_names not in ("v1", "v0"):
        raise UserError("--metrics-names must be v1 or v0")
    if per_request not in ("none", "summary", "detailed"):
        raise UserError("--per-request-spec-decode-metrics must be none, summary or detailed")
    if k < 0:
        raise UserError("--k must be >= 0")
    # serve-sim's own flags; the deployment's are SimulateConfig's (checked there, as for simulate)
    L.check_flag("--time-scale", time_scale, Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)])
    L.check_flag("--port", port, Annotated[int, Field(ge=0, le=65535)])
    L.check_flag("--seed", seed, L.Seed)
    L.check_flag("--default-max-tokens", default_max_tokens, L.Tokens)
    if k:
        L.check_flag("--k", k, L.DraftK)
    # the deployment is simulate's, built from the same config model (k >= 1 there; k=0 serves its baseline)
    flags = {
        "target": ("target", target), "draft": ("draft", draft), "method": ("method", method), "gpu": ("gpu", gpu),
        "tp": ("tp", tp), "draft_tp": ("draft_tp", draft_tp),
        "quantization": ("quantization", parse_quant(quantization, "--quantization").value if quantization else None),
        "k": ("k", max(k, 1)),
        "acceptance_rates": ("acceptance_rates", parse_numbers(acceptance_rates, "--acceptance-rates")
                             if acceptance_rates is not None else None),
        "acceptance_length": ("acceptance_length", acceptance_length),
        "acceptance_profile": ("acceptance_profile", str(acceptance_profile) if acceptance_profile else None),
        "heterogeneity": ("heterogeneity", heterogeneity), "max_num_seqs": ("max_num_seqs", max_num_seqs),
        "max_num_batched_tokens": ("max_num_batched_tokens", max_num_batched_tokens),
        "kv_capacity_tokens": ("kv_capacity_tokens", kv_capacity_tokens),
        "step_time_model": ("step_time_model", str(step_time_model) if step_time_model else None),
    }
    sim = build_config(SimulateConfig, flags, config_file)
    if config_file is not None and sim.k is not None and not given_on_command_line("k"):
        k = sim.k  # the file's k, unless --k was given (0 = baseline)
    speculative = k > 0
    r = resolve(sim, speculative=speculative)
    dep, info = (r.speculative, r.speculative_info) if speculative else (r.baseline, r.baseline_info)
    target, method = r.config.target, r.config.method
    cfg = ServeSimConfig(host=host, port=port, served_model_name=model_name or target, k=k, method=method,
                         time_scale=time_scale, default_max_tokens=default_max_tokens,
                         output_len=LengthDist.parse(output_len) if output_len else None,
                         vllm_version=vllm_version, metrics_names=metrics_names,
                         per_request_spec_decode_metrics=per_request, seed=seed, admin=admin)

    async def main() -> None:
        server = SimServer(dep, cfg)
        runner, bound = await start_server(server, host, port)
        spec = f"{method} k={k}" if speculative else "no speculation (baseline)"
        print(f"serve-sim: http://{host}:{bound} model={cfg.served_model_name} {spec}; simulating "
              f"{info['target']} on {info['tp']}x {info['gpu']}, KV {info['kv_capacity_tokens']:,} tokens, "
              f"time scale {time_scale:g}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

"""The estimate stage: ``run(EstimateConfig, output_dir) -> EstimateResult``.

Everything between a validated :class:`~specwise.schemas.configs.EstimateConfig` and the runner: the methods
(``auto`` picks draft_model with a draft, else ngram), the context temperatures (``auto`` rounds to 0.5, or
keeps them exactly for n-gram), the prompts, the GPU the cost ratio is priced for, torch's device, dtype and
threads, and the resolved config written as ``config.json`` into the output directory. Bad input fails
before any model is loaded. The CLI only turns flags into the config.
"""

from __future__ import annotations

import json
from pathlib import Path

from specwise.errors import UserError
from specwise.schemas.configs import EstimateConfig
from specwise.schemas.estimate import EstimateResult, EstimateSettings

METHODS = ("draft_model", "ngram")
CONFIG_FILE = "config.json"


def methods_for(text: str, has_draft: bool) -> list[str]:
    """``auto`` / ``both`` / a comma list of draft_model, ngram -> the methods to estimate, in a fixed order."""
    if text == "auto":
        return ["draft_model"] if has_draft else ["ngram"]
    if text == "both":
        return list(METHODS)
    methods = [m.strip() for m in text.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise UserError(f"unknown --method {m!r}; use draft_model, ngram or both")
    return sorted(set(methods), key=METHODS.index)


def run(config: EstimateConfig, output_dir: Path, *, resume: bool = False, profile_out: Path | None = None,
        show_progress: bool = True) -> EstimateResult:
    """Estimate acceptance as ``config`` says, writing records, profile and ``config.json`` to ``output_dir``."""
    from specwise.catalog.vllm_versions import newest_version
    from specwise.estimate.pipeline import auto_context_temperatures
    from specwise.estimate.prompts import load_prompts

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} is a file; give a directory for the run's records")
    if profile_out is not None and Path(profile_out).is_dir():
        raise UserError(f"--profile-out {profile_out} is a directory; give a file name, e.g. {profile_out}/profile.json")
    temps = config.temperatures
    methods = methods_for(config.method, config.draft is not None or config.draft_layers is not None
                          or config.draft_quantize is not None)
    ctx_temps = (auto_context_temperatures(temps, exact="ngram" in methods) if config.context_temperatures is None
                 else sorted(set(config.context_temperatures)))
    prompts = Path(config.prompts)
    records = load_prompts(prompts, config.limit)  # bad input fails before the heavy imports
    gpu = config.gpu
    if gpu is not None:
        from specwise.catalog.models import get_gpu

        gpu = get_gpu(gpu).name  # unknown names fail here, before loading models

    from specwise.estimate.models import default_device, default_dtype, require_torch
    from specwise.estimate.runner import run as run_estimate

    torch = require_torch()
    if config.threads:
        torch.set_num_threads(config.threads)
    dev = default_device(config.device)
    torch_dtype = default_dtype(dev, config.dtype)
    settings = EstimateSettings(
        target=config.target, draft=config.draft, draft_layers=config.draft_layers,
        draft_quantize=config.draft_quantize, target_quantize=config.target_quantize, methods=methods,
        temperatures=temps, k_max=config.k_max, max_new_tokens=config.max_new_tokens, context_temperatures=ctx_temps,
        prompt_lookup_min=config.prompt_lookup_min, prompt_lookup_max=config.prompt_lookup_max, seed=config.seed,
        prompts=str(prompts.resolve()), prompt_limit=config.limit, wrap_plain_as_chat=config.chat,
        top_p=config.top_p, top_k=max(config.top_k, 0), vllm_version=config.vllm_version or newest_version(),
        max_model_len=config.max_model_len,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    # `specwise estimate --config DIR/config.json` repeats the run
    (output_dir / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2))
    return run_estimate(settings, records, dev, torch_dtype, output_dir, resume,
                        config.batch_size or (32 if dev.startswith("cuda") else 8),
                        verification="argmax_draft" if config.draft_sample_method == "greedy" else "lossless",
                        fixed_k=config.k, cost_ratio=config.cost_ratio, validate=config.validate_run,
                        validate_temperatures=config.validate_temperatures or temps, profile_out=profile_out,
                        show_progress=show_progress, cost_gpu=gpu, cost_tp=config.tp)

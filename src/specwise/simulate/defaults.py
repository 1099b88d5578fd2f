"""Building a simulated deployment from plan-style inputs, and the built-in default (``make demo``).

The default is the setting of the vLLM speculative-decoding blog (docs/reference/theory-and-calibration.md §2.1): a
70B Llama target on 4x H100 with a small same-tokenizer draft model, k=4, on a chat workload. The
acceptance of Llama-3.2-1B-Instruct -> Llama-3.1-70B-Instruct has never been published for vLLM (§5,
"To measure"), so the default profile is ASSUMED from proxies and says so.
"""

from __future__ import annotations

from specwise.catalog.models import get_gpu, get_model
from specwise.errors import UserError
from specwise.perf.steptime import CostRatio, DraftCost, StepTimeModel
from specwise.plan.memory import plan_memory
from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import Source
from specwise.schemas.model import GPUSpec, ModelSpec, Quantization
from specwise.schemas.plan import PlanRequest
from specwise.simulate.engine import EngineConfig
from specwise.simulate.run import Deployment
from specwise.simulate.workload import LengthDist

DEFAULT_TARGET = "meta-llama/Llama-3.1-70B-Instruct"
DEFAULT_DRAFT = "meta-llama/Llama-3.2-1B-Instruct"
DEFAULT_GPU = "H100"
DEFAULT_TP = 4
DEFAULT_K = 4
# ShareGPT mean prompt / generation lengths 355 / 728 tokens (docs/reference/theory-and-calibration.md §1.6 table);
# lognormal spread assumed.
DEFAULT_PROMPT_LEN = LengthDist(kind="lognormal", mean=355, cv=1.0, high=8192)
DEFAULT_OUTPUT_LEN = LengthDist(kind="lognormal", mean=728, cv=0.8, high=4096)
# vLLM V1 defaults on an 80 GB GPU: max_num_seqs 256, max_num_batched_tokens 8192 (online serving),
# gpu_memory_utilization 0.92 from 0.20.0 (docs/reference/vllm-speculative-decoding.md, key fact 13).
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
GPU_MEMORY_UTILIZATION = 0.92
# activations, CUDA graphs and the non-torch reserve per GPU in this fallback estimate
RUNTIME_OVERHEAD_GIB = 3.0


def default_acceptance(target: str = DEFAULT_TARGET, draft: str = DEFAULT_DRAFT) -> AcceptanceProfile:
    """Assumed acceptance of a 1B same-family draft model for a 70B Llama target on chat prompts."""
    return AcceptanceProfile(
        target=target,
        draft=draft,
        method="draft_model",
        source=Source.assumed,
        classes=[
            # T=0: alpha ~0.70 (LaMDA 137B <- 2B draft: alpha 0.71 at T=0, Leviathan Table 3; §1.5), with
            # the flat-then-rising per-position shape measured for EAGLE on ShareGPT (§1.6).
            AcceptanceClass(category="all", temperature=0.0, conditional=[0.70, 0.70, 0.72, 0.74, 0.75, 0.76],
                            heterogeneity=0.5),
            # T=1: lower, as for T5/LaMDA pairs (alpha drops 0.0-0.12 from T=0 to T=1, Leviathan Table 3).
            AcceptanceClass(category="all", temperature=1.0, conditional=[0.63, 0.63, 0.65, 0.67, 0.68, 0.69],
                            heterogeneity=0.5),
        ],
        notes=[
            "ASSUMED, not measured: no published vLLM acceptance exists for Llama-3.2-1B -> Llama-3.1-70B "
            "(docs/reference/theory-and-calibration.md §5). Proxy: LaMDA 137B <- 2B alpha 0.71 (Leviathan et al. 2023, "
            "Table 3); per-position shape from SpecDecode-Bench EAGLE ShareGPT traces (§1.6). Measure it with "
            "`specwise estimate` and pass --acceptance-profile.",
        ],
    )


def estimate_kv_capacity_tokens(
    target: ModelSpec,
    gpu: GPUSpec,
    tp: int,
    quant: Quantization | str | None = None,
    draft: ModelSpec | None = None,
    draft_tp: int = 1,
    draft_quant: Quantization | str | None = None,
    kv_dtype_bytes: float = 2.0,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
) -> int:
    """KV tokens that fit next to the weights, per vLLM V1 accounting in outline (reference §7).

    Per GPU: memory x utilisation - runtime reserve - target weights / TP - draft weights / draft TP,
    divided by the per-token KV of target (/ TP) and draft (/ draft TP): target and draft layers share one
    block pool (docs/reference/vllm-speculative-decoding.md §7). A rough fallback for methods the plan cannot size.
    """
    free = gpu.memory_bytes * gpu_memory_utilization - RUNTIME_OVERHEAD_GIB * 1024**3
    free -= target.weight_bytes(quant) / tp
    per_token = target.kv_bytes_per_token(kv_dtype_bytes) / tp
    if draft is not None:
        free -= draft.weight_bytes(draft_quant) / draft_tp
        per_token += draft.kv_bytes_per_token(kv_dtype_bytes) / draft_tp
    if free <= 0:
        raise UserError(
            f"{target.id} does not fit on {tp}x {gpu.name}: weights exceed the memory budget; raise --tp"
        )
    return int(free // per_token)


def plan_kv_capacity(target_name: str, draft_name: str | None, method: str, gpu_name: str, tp: int,
                     draft_tp: int, quant: str | None, vllm_version: str | None, k: int = 4,
                     max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                     context: int | None = None) -> tuple[int, int | None, str]:
    """(speculative KV tokens, baseline KV tokens, source) from ``specwise.plan``'s memory model.

    A method the plan cannot size (e.g. no EAGLE head for this target in the catalog) falls back to
    :func:`estimate_kv_capacity_tokens` without the head, and the source says so.
    """
    fields: dict = dict(target=target_name, gpu=gpu_name, tp=tp, gpus=tp, num_speculative_tokens=max(k, 1))
    plan_methods = ("draft_model", "ngram", "eagle", "eagle3", "mtp")
    if method in plan_methods:
        fields["method"] = method
        if draft_name and method == "draft_model":
            fields["draft"] = draft_name
            fields["draft_tp"] = draft_tp
    for key, value in (("vllm_version", vllm_version), ("target_quant", quant), ("max_num_seqs", max_num_seqs),
                       ("max_num_batched_tokens", max_num_batched_tokens), ("context", context)):
        if value is not None:
            fields[key] = value
    try:
        plan = plan_memory(PlanRequest(**fields), suggest=False)
    except UserError as exc:
        if method == "draft_model":
            raise
        # e.g. no EAGLE head for this target in the catalog: size the KV cache without the head
        spec, base = _fallback_kv(target_name, None, method, gpu_name, tp, draft_tp, quant)
        return spec, base, f"fallback estimate (plan: {exc})"
    base_kv = int(plan.baseline.kv_cache_tokens)
    if base_kv <= 0:
        raise UserError(f"{target_name} leaves no KV cache on {tp}x {gpu_name}; raise --tp or quantise")
    spec_kv = int(plan.speculative.kv_cache_tokens) if plan.speculative is not None else base_kv
    if spec_kv <= 0:
        raise UserError(f"target + draft leave no KV cache on {tp}x {gpu_name}; raise --tp or pick a smaller draft")
    return spec_kv, base_kv, "specwise plan memory model"


def _fallback_kv(target_name: str, draft_name: str | None, method: str, gpu_name: str, tp: int, draft_tp: int,
                 quant: str | None) -> tuple[int, int]:
    target, tq = get_model(target_name)
    gpu = get_gpu(gpu_name)
    q = quant or tq
    d = None
    dq = None
    if draft_name and method == "draft_model":
        d, dq = get_model(draft_name)
    base = estimate_kv_capacity_tokens(target, gpu, tp, q)
    spec = estimate_kv_capacity_tokens(target, gpu, tp, q, d, draft_tp, dq) if d else base
    return spec, base


def resolve_pair(target: str | None, draft: str | None, method: str | None,
                 tp: int | None) -> tuple[str, str | None, str, int]:
    """(target, draft, method, tp) with the flags left out filled in, for ``simulate`` and ``serve-sim``.

    No target: the demo deployment (DEFAULT_TARGET with DEFAULT_DRAFT on DEFAULT_TP GPUs, unless a draft or
    method is named). A named target runs on TP 1 unless told. The method is draft_model when there is a
    draft, else eagle3.
    """
    if tp is not None and tp < 1:
        raise UserError("--tp must be >= 1")
    is_default = target is None
    target = target or DEFAULT_TARGET
    if is_default and draft is None and method is None:
        draft = DEFAULT_DRAFT
    if tp is None:
        tp = DEFAULT_TP if is_default else 1
    return target, draft, (method or ("draft_model" if draft else "eagle3")).lower(), tp


def build_deployment(
    target_name: str,
    gpu_name: str,
    tp: int,
    *,
    method: str = "draft_model",
    draft_name: str | None = None,
    draft_tp: int = 1,
    quant: str | None = None,
    kv_capacity_tokens: int | None = None,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    acceptance: AcceptanceProfile | None = None,
    vllm_version: str | None = None,
    speculative: bool = True,
    k: int = DEFAULT_K,
) -> tuple[Deployment, dict]:
    """A Deployment for baseline (speculative=False) or speculative runs, plus a description dict."""
    target, tq = get_model(target_name)
    gpu = get_gpu(gpu_name)
    q = Quantization(quant) if quant else tq
    step = StepTimeModel.from_deployment(target, gpu, tp=tp, quant=q)
    draft_spec = None
    dq = None
    if speculative and method == "draft_model":
        if not draft_name:
            raise UserError("method draft_model needs --draft MODEL")
        draft_spec, dq = get_model(draft_name)
        if draft_spec.tokenizer_family != target.tokenizer_family:
            raise UserError(
                f"draft {draft_spec.id} uses tokenizer '{draft_spec.tokenizer_family}', target uses "
                f"'{target.tokenizer_family}': vLLM needs the same vocabulary; pick a same-family draft"
            )
    draft = (DraftCost.for_method(method, gpu=gpu, draft=draft_spec, draft_tp=draft_tp, draft_quant=dq,
                                  target=target, tp=tp) if speculative else DraftCost(method="none"))
    if kv_capacity_tokens is None:
        spec_kv, base_kv, kv_source = plan_kv_capacity(target_name, draft_name, method, gpu_name, tp, draft_tp,
                                                       quant, vllm_version, k=k, max_num_seqs=max_num_seqs,
                                                       max_num_batched_tokens=max_num_batched_tokens)
        kv = spec_kv if speculative else (base_kv or spec_kv)
    else:
        kv, kv_source = kv_capacity_tokens, "given"
    dep = Deployment(target=step, draft=draft,
                     engine=EngineConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                                         kv_capacity_tokens=kv),
                     acceptance=acceptance if speculative else None)
    info = {"target": target_name, "target_catalog_id": target.id, "gpu": gpu.name, "tp": tp, "quantization": q.value if q else None,
            "method": method if speculative else None, "draft": draft_name if draft_spec else None,
            "draft_tp": draft_tp if draft_spec else None, "kv_capacity_tokens": kv,
            "kv_capacity_source": kv_source}
    if speculative:
        # the batch-1 c that plan and estimate report for this deployment, from the same step-time model
        cost = CostRatio.compute(target, draft_spec, gpu, tp, draft_tp, q, dq, method=method, batch_size=1, k=k)
        info["cost_ratio"] = cost.value
        info["cost_ratio_basis"] = cost.basis
    return dep, info


def load_step_time_model(path) -> StepTimeModel:
    """A user's StepTimeModel JSON (every constant of the roofline, e.g. from perf.calibrate)."""
    from pathlib import Path

    from pydantic import ValidationError

    p = Path(path)
    if not p.exists():
        raise UserError(f"step-time model '{p}' not found")
    try:
        return StepTimeModel.model_validate_json(p.read_text())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        raise UserError(f"{p}: not a StepTimeModel JSON ({where + ': ' if where else ''}{err.get('msg')}); "
                        "fit one with `python -m specwise.perf.calibrate`") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: not a StepTimeModel JSON ({str(exc).splitlines()[0]})") from None


def default_deployment(speculative: bool = True) -> tuple[Deployment, int]:
    dep, _ = build_deployment(DEFAULT_TARGET, DEFAULT_GPU, DEFAULT_TP, draft_name=DEFAULT_DRAFT,
                              acceptance=default_acceptance(), speculative=speculative)
    return dep, DEFAULT_K

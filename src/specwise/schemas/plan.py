"""Inputs and results of ``specwise plan``: memory budget, pairing report, checks and launch config.

Units: memory in GiB (2^30 bytes, as vLLM logs it), KV per token in bytes, lengths in tokens.
Every budget is **per GPU of one serving instance** (the GPU that holds the most, since vLLM sizes the
block pool by the tightest worker) unless a field says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from specwise.schemas.base import SpecwiseModel
from specwise.schemas.limits import (
    MAX_CONCURRENCY,
    MAX_GPU_BANDWIDTH_TBS,
    MAX_GPU_MEMORY_GIB,
    MAX_GPU_TFLOPS,
    MAX_GPUS,
    MAX_K,
    MAX_TOKENS,
)
from specwise.schemas.model import Quantization

# Relative error allowed between a planned and a logged capacity quantity (weights, KV memory, KV tokens).
# 10 %: on a GPU the plan's assumed terms (activation peak, non-torch, CUDA graphs) together are ~2-3 GiB of a
# 50-70 GiB KV budget, so a correct plan lands within a few percent; a wrong dtype, quantisation or missed
# draft does not (a same-shape draft halves the KV tokens, fp32 instead of bf16 doubles the weights).
CAPACITY_TOLERANCE = 0.10

# One row of num_speculative_tokens_per_batch_size: [first batch size, last batch size, k] (inclusive). Batch
# sizes are sequences in flight, bounded like max_num_seqs; k = 0 turns speculation off for that range.
GuardRow = tuple[
    Annotated[int, Field(ge=1, le=MAX_TOKENS)], Annotated[int, Field(ge=1, le=MAX_TOKENS)],
    Annotated[int, Field(ge=0, le=MAX_K)],
]

SpecMethod = Literal["draft_model", "ngram", "eagle", "eagle3", "mtp"]
KVCacheDtype = Literal["auto", "fp8"]

NEWEST_VLLM_VERSION = "0.33.0"  # docs/reference/vllm-speculative-decoding.md §0: 0.33.0 (Nov 2026) is the newest covered


class PlanRequest(SpecwiseModel):
    """What the user wants to deploy. ``None`` means "use vLLM's default for the chosen version"."""

    target: str = Field(description="target model: catalog name/HF id, local HF directory or config.json")
    draft: str | None = Field(None, description="draft model or speculator (EAGLE head); None for ngram/mtp")
    method: SpecMethod | None = Field(
        None, description="speculation method; inferred from the draft when omitted (draft_model or the head's kind)"
    )
    gpu: str | None = Field(None, description="GPU name from the catalog (e.g. H100-SXM)")
    gpu_memory_gib: float | None = Field(None, gt=0, le=MAX_GPU_MEMORY_GIB, allow_inf_nan=False,
                                         description="total memory of a GPU not in the catalog, GiB")
    gpu_bandwidth_tbs: float | None = Field(None, gt=0, le=MAX_GPU_BANDWIDTH_TBS, allow_inf_nan=False,
                                            description="custom GPU HBM bandwidth, TB/s")
    gpu_bf16_tflops: float | None = Field(None, gt=0, le=MAX_GPU_TFLOPS, allow_inf_nan=False,
                                          description="custom GPU dense BF16 TFLOP/s")
    gpus: int | None = Field(None, ge=1, le=MAX_GPUS, description="GPUs available; gpus / tp data-parallel instances")
    tp: int | None = Field(None, ge=1, le=MAX_GPUS, description="target tensor parallel size (default: gpus)")
    draft_tp: int | None = Field(None, ge=1, le=MAX_GPUS,
                                 description="draft_tensor_parallel_size: 1 or tp (default: tp)")
    target_quant: Quantization | None = Field(None, description="target weight format (default: from the name)")
    draft_quant: Quantization | None = None
    kv_cache_dtype: KVCacheDtype = "auto"
    gpu_memory_utilization: float | None = Field(
        None, description="fraction of total GPU memory vLLM may use; default 0.90 before 0.20.0, 0.92 from 0.20.0"
    )
    max_model_len: int | None = Field(None, le=MAX_TOKENS, description="default: the target's max_position_embeddings")
    max_num_seqs: int | None = Field(None, le=MAX_CONCURRENCY,
                                     description="default: vLLM V1 online-serving default (assumed)")
    max_num_batched_tokens: int | None = Field(None, le=MAX_TOKENS,
                                               description="default: vLLM V1 online-serving default")
    kv_cache_memory_gib: float | None = Field(
        None, gt=0, le=MAX_GPU_MEMORY_GIB, allow_inf_nan=False, description="fixed KV cache size per GPU (vLLM --kv-cache-memory-bytes, >= 0.10.2; on CPU "
        "VLLM_CPU_KVCACHE_SPACE): bypasses the utilisation math"
    )
    block_size: int = Field(16, gt=0, le=1 << 16)
    model_runner: Literal["v1", "v2"] | None = Field(
        None, description="force vLLM's model runner of the baseline (VLLM_USE_V2_MODEL_RUNNER=0 -> v1, the "
        "like-for-like baseline); default: the version's engine modes")
    context: int | None = Field(None, le=MAX_TOKENS,
                                description="typical prompt + output tokens per request (default 4096)")
    num_speculative_tokens: int = Field(4, ge=1, le=MAX_K, description="k, draft tokens per step")
    vllm_version: str = NEWEST_VLLM_VERSION
    guard_schedule: list[GuardRow] | None = Field(
        None,
        description="num_speculative_tokens_per_batch_size as [[start, end, k], ...] (vLLM >= 0.24)",
    )

    @field_validator("gpu_memory_utilization")
    @classmethod
    def _util_range(cls, v: float | None) -> float | None:
        if v is not None and not (0.0 < v <= 1.0):
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {v}")
        return v

    @field_validator("max_model_len", "max_num_seqs", "max_num_batched_tokens", "context")
    @classmethod
    def _positive(cls, v: int | None, info: Any) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"{info.field_name} must be a positive number of tokens, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PlanRequest:
        if self.gpu is None and self.gpu_memory_gib is None:
            raise ValueError("give a GPU: --gpu NAME (see `specwise catalog --gpus`) or --gpu-memory-gib X")
        return self


class ResolvedSettings(SpecwiseModel):
    """The settings the plan actually used, defaults filled in (each says where it came from)."""

    target_id: str
    target_quant: str
    target_quantize_at_load: bool = Field(
        False, description="the checkpoint is not stored in target_quant: the server must quantise it at load"
    )
    draft_id: str | None = None
    draft_quant: str | None = None
    draft_quantize_at_load: bool = False
    method: SpecMethod | None = None
    gpu: str
    gpu_memory_gib: float
    gpus: int
    tp: int
    draft_tp: int | None = None
    instances: int = Field(description="data-parallel instances = gpus / tp")
    kv_cache_dtype: str
    kv_dtype_bytes: float
    gpu_memory_utilization: float
    kv_cache_memory_gib: float | None = None
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    context: int
    num_speculative_tokens: int
    vllm_version: str
    model_runner: str | None = None
    cudagraph_memory_counted: bool = Field(description="vLLM >= 0.20 subtracts a CUDA-graph estimate")
    defaults_used: list[str] = Field(default_factory=list, description="settings taken from defaults (assumed)")


class MemoryBudget(SpecwiseModel):
    """One instance's per-GPU memory budget (baseline = no speculation)."""

    total_gib: float = Field(description="GPU memory, GiB")
    requested_gib: float = Field(description="ceil(total x gpu_memory_utilization), GiB")
    weights_gib_per_gpu: float = Field(description="target + draft weights on the fullest GPU, GiB")
    target_weights_gib_per_gpu: float
    draft_weights_gib_per_gpu: float = 0.0
    activation_gib: float = Field(description="profile-run activation peak (forward or sampler), GiB")
    overhead_gib: float = Field(description="non-torch memory: CUDA context, NCCL buffers, GiB (assumed)")
    cudagraph_gib: float = Field(description="CUDA-graph estimate subtracted from the KV budget (>= 0.20), GiB")
    kv_cache_gib: float = Field(description="memory left for the KV cache, GiB (negative: does not fit)")
    kv_bytes_per_token_target: float = Field(description="target KV bytes per token on one GPU")
    kv_bytes_per_token_draft: float = Field(0.0, description="draft KV bytes per token on one GPU")
    kv_bytes_per_token: float = Field(description="target + draft: every block reserves both")
    num_gpu_blocks: int
    kv_cache_tokens: int = Field(
        description="num_gpu_blocks x block_size: tokens the pool holds with every target and draft layer holding each"
    )
    max_concurrency: float = Field(
        description="pool / KV one max_model_len request needs (sliding-window layers capped at the window); "
        "= kv_cache_tokens / max_model_len without sliding windows; as vLLM logs it"
    )
    max_concurrency_at_context: int = Field(
        description="sequences of `context` tokens (+k lookahead) whose blocks fit, KV-bound"
    )
    effective_concurrency_at_context: int = Field(
        description="min(max_num_seqs, max_concurrency_at_context): what the scheduler can run"
    )
    kv_tokens_lost: int = Field(0, description="baseline kv_cache_tokens - these kv_cache_tokens")
    kv_tokens_lost_fraction: float = Field(0.0, description="kv_tokens_lost / baseline kv_cache_tokens")
    concurrency_lost: float = Field(0.0, description="baseline max_concurrency - this max_concurrency")
    concurrency_lost_fraction: float = 0.0
    fits: bool = Field(description="weights fit and at least one max_model_len sequence fits (max_concurrency >= 1)")


class Suggestion(SpecwiseModel):
    """A change that would make the plan fit (or fit better), with the numbers it would give."""

    action: str = Field(description="what to change, in words")
    change: dict[str, Any] = Field(description="the PlanRequest fields to change")
    fits: bool
    kv_cache_tokens: int
    max_concurrency: float
    kv_cache_gib: float


class MemoryPlan(SpecwiseModel):
    """Baseline vs speculative memory budget of one deployment."""

    settings: ResolvedSettings
    baseline: MemoryBudget
    speculative: MemoryBudget | None = Field(None, description="None when no speculation is configured")
    kv_tokens_lost: int = 0
    kv_tokens_lost_fraction: float = 0.0
    concurrency_lost: float = 0.0
    concurrency_lost_fraction: float = 0.0
    fits: bool = Field(description="the speculative plan (or the baseline, without speculation) fits")
    suggestions: list[Suggestion] = Field(default_factory=list)
    source: str = "estimated"
    notes: list[str] = Field(default_factory=list)


class Check(SpecwiseModel):
    """One named rule with its threshold and the plan's value."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    message: str


class Alternative(SpecwiseModel):
    """Another speculator the catalog offers for this target."""

    method: SpecMethod
    draft: str | None = None
    reason: str
    size_ratio: float | None = None
    draft_weights_gib: float | None = None


class PairingReport(SpecwiseModel):
    """Is the draft a sensible partner for the target?"""

    method: SpecMethod | None = None
    tokenizer_compatible: bool = Field(description="draft tokens map to the same target ids")
    tokenizer_family_target: str
    tokenizer_family_draft: str | None = None
    vocab_size_target: int
    vocab_size_draft: int | None = None
    vocab_note: str = ""
    same_family: bool | None = None
    lineage_note: str = ""
    size_ratio: float | None = Field(None, description="target params / draft params (active params for MoE)")
    size_ratio_score: float | None = Field(None, description="1.0 inside the 1:8-1:12 sweet spot, lower outside")
    cost_ratio: float | None = Field(
        None, description="c = drafting time per drafted token / target forward at batch 1 (estimated, "
        "specwise.perf step-time model)")
    cost_ratio_note: str = Field("", description="what c was priced for: GPU, TP, draft TP, batch, k")
    alternatives: list[Alternative] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class LaunchConfig(SpecwiseModel):
    """The exact commands to launch the plan."""

    vllm_version: str
    vllm_command: str
    vllm_args: list[str] = Field(description="argv after `vllm serve`")
    speculative_config: dict[str, Any] | None = None
    config_form: Literal["none", "legacy_flags", "json"] = "json"
    sglang_command: str | None = None
    notes: list[str] = Field(default_factory=list)


class StartupLogFacts(SpecwiseModel):
    """Memory facts a vLLM server logs at startup (V1 and V0 wordings). None: not in the log."""

    vllm_version: str | None = None
    engine: Literal["v1", "v0", "unknown"] = "unknown"
    model_loading_gib: float | None = Field(None, description="'Model loading took X GiB' (max over ranks)")
    available_kv_cache_gib: float | None = Field(
        None, description="'Available KV cache memory: X GiB' (vLLM-CPU: 'Explicitly set (X/...) GiB for KV cache')"
    )
    gpu_kv_cache_tokens: int | None = Field(None, description="'GPU KV cache size: N tokens' (or CPU on vLLM-CPU)")
    kv_cache_device: str | None = Field(None, description="the device that line names: GPU, CPU, XPU or TPU")
    cpu_memory_gib: float | None = Field(None, description="vLLM-CPU: the node's total memory ('set (X/Y) GiB', Y)")
    cpu_kv_space_auto: bool | None = Field(
        None, description="vLLM-CPU: True when it sized the KV cache itself ('Auto set'), False when given one"
    )
    num_gpu_blocks: int | None = Field(None, description="V0 '# GPU blocks: N' (or '# cuda blocks')")
    max_concurrency: float | None = Field(None, description="'Maximum concurrency for N tokens per request: Xx'")
    max_concurrency_tokens: int | None = Field(None, description="the N in that line")
    cudagraph_gib: float | None = Field(None, description="'Graph capturing finished in S secs, took X GiB'")
    activation_peak_gib: float | None = Field(None, description="profiling line: activation / torch peak")
    non_torch_gib: float | None = Field(None, description="profiling line: non-torch memory")
    kv_cache_gib_profiled: float | None = Field(None, description="V0 profiling line: memory reserved for KV cache")
    lines_matched: int = 0
    notes: list[str] = Field(default_factory=list, description="matched lines that were ignored, and why")


class LogComparison(SpecwiseModel):
    """One quantity: what the plan predicted vs what the server logged."""

    quantity: str
    unit: str
    predicted: float
    logged: float
    error: float = Field(description="predicted - logged")
    error_fraction: float | None = Field(None, description="(predicted - logged) / logged")


class PlanResult(SpecwiseModel):
    """Everything ``specwise plan`` reports."""

    request: PlanRequest
    memory: MemoryPlan
    pairing: PairingReport | None = None
    checks: list[Check] = Field(default_factory=list)
    config: LaunchConfig | None = None
    startup_log: StartupLogFacts | None = Field(None, description="facts read with --check-log")
    log_comparison: list[LogComparison] = Field(default_factory=list, description="predicted vs logged")

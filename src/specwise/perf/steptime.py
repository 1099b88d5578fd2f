"""Step-time model of one engine step: target forward (roofline + fixed costs), draft cost, scheduler.

The formulas and default constants follow docs/reference/theory-and-calibration.md §4.3 and §8.1:

* hybrid form (default): ``t_fix + max(weight_read(N), compute_s_per_token * N) + kv_read_s_per_token * KV
  + comm_s + comm_s_per_token * N``: below N* ~ weight_read / compute_s_per_token tokens the GEMMs are
  bound by the weight read, above it by compute.
* additive form (the SpecDecode-Bench fit, §2.3): ``t_fix + weight_read + a*N + b*KV (+ comm)``.

A step adds the scheduler/engine overhead ``t_sched_s`` and, with speculation, the draft time
(:class:`DraftCost`). Every constant is a plain field so users can calibrate it
(:mod:`specwise.perf.calibrate`). Functions accept numpy arrays so the simulator can price many
candidate steps (e.g. every k for the oracle policy) in one call.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field

from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.model import EIGHT_BIT_COMPUTE, LINEAR_BYTES_PER_PARAM, GPUSpec, ModelSpec, Quantization

# ---- default efficiencies and overheads -------------------------------------------------------------
# docs/reference/theory-and-calibration.md §4.3: the 8B/H100 additive fit corresponds to eta_f ~ 0.72 and eta_kv ~ 1.0.
# The fit's 5.886 ms constant is the weight read at ~76 % of HBM bandwidth *including* launch cost; we
# split it into a weight read at 85 % plus a launch cost of 0.25 ms + 12 us per layer, which gives
# 5.27 + 0.63 = 5.90 ms for Llama-3.1-8B on H100 (matches the fit) and lets the launch part scale
# with depth for other models.
ETA_BW = 0.85
ETA_COMPUTE = 0.72
ETA_KV = 1.0
LAUNCH_BASE_S = 0.25e-3
LAUNCH_PER_LAYER_S = 12e-6
# Scheduler/engine overhead per step, vLLM 0.10, 8B on H100 (SpecDecode-Bench predictor.py, §2.3).
T_SCHED_S = 1.20683946e-3
# Tensor-parallel all-reduce: 2 per layer (§4.3: 2L*(alpha_ar + N*h*2B/beta_ar)). A custom NVLink
# all-reduce of a small message costs ~8 us; bandwidth at 70 % of the NVLink figure. With these,
# 70B on TP=4 gets ~1.3 ms of all-reduce + 1.2 ms launch per step, the "~2-3 ms all-reduce/launch"
# of §8.1.
ALLREDUCE_LATENCY_S = 8e-6
ALLREDUCE_BW_EFFICIENCY = 0.7
# EAGLE/EAGLE-3 head cost (SpecDecode-Bench predictor.py, Llama-3.1-8B on H100): 2.135 ms per step
# + 2.378 ns per KV token + 0.841 us per speculated token; the reference reads it as "2.14 ms per step at
# k = 3-5" (docs/reference/theory-and-calibration.md §4.3), so the default per-pass cost is 0 and k enters through the
# speculated-token term. Set head_per_pass_s to charge each sequential head pass separately.
HEAD_FIXED_S = 2.13526175e-3
HEAD_PER_PASS_S = 0.0
HEAD_KV_S_PER_TOKEN = 2.37768493e-9
HEAD_S_PER_SPEC_TOKEN = 8.41429603e-7
# n-gram lookup on the CPU: 0.5875 % of the target forward (SpecDecode-Bench predictor.py).
NGRAM_FRACTION = 0.005875


class StepTimeModel(SpecwiseModel):
    """Time of one target forward pass as a function of batched tokens N and KV tokens read."""

    # every constant is a finite time: an inf or nan read from a user's JSON would stall the simulator's clock
    model_config = ConfigDict(**SpecwiseModel.model_config, allow_inf_nan=False)

    label: str = ""
    form: Literal["hybrid", "additive"] = "hybrid"
    t_fix_s: float = Field(ge=0, description="fixed per-forward cost: launch, sync, norms, sampling")
    weight_read_s: float = Field(
        ge=0, description="time to stream the weights a step touches (dense part for MoE), per GPU"
    )
    compute_s_per_token: float = Field(ge=0, description="GEMM time per batched (query) token, per GPU")
    kv_read_s_per_token: float = Field(ge=0, description="time to read one context token's KV, per GPU share")
    comm_s: float = Field(0.0, ge=0, description="tensor-parallel all-reduce latency per forward")
    comm_s_per_token: float = Field(0.0, ge=0, description="all-reduce bandwidth time per batched token")
    t_sched_s: float = Field(T_SCHED_S, ge=0, description="scheduler/engine overhead per engine step")
    t_seq_s: float = Field(0.0, ge=0, description="host-side cost per running sequence per engine step (input "
                           "preparation, sampling bookkeeping, output processing); 0 in the roofline, fitted by "
                           "calibrations")
    moe_expert_read_s: float = Field(
        0.0, ge=0, description="time to stream every routed expert (MoE); the share touched grows with N"
    )
    moe_touch_fraction: float = Field(
        0.0, ge=0, le=1, description="experts_per_token / num_experts: share of experts one token touches"
    )
    cudagraph_sizes: list[int] | None = Field(
        None, description="captured CUDA-graph batch sizes; N is padded up to the next one (staircase)"
    )
    eager_penalty_s: float = Field(0.0, ge=0, description="extra cost when N exceeds the largest graph")
    source: Source = Source.assumed
    notes: list[str] = Field(default_factory=list)

    # ---- evaluation -------------------------------------------------------------------------------
    def _padded(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.cudagraph_sizes:
            return n, np.zeros_like(n)
        sizes = np.asarray(sorted(self.cudagraph_sizes), dtype=float)
        idx = np.searchsorted(sizes, n, side="left")
        inside = idx < sizes.size
        padded = np.where(inside, sizes[np.minimum(idx, sizes.size - 1)], n)
        return padded, np.where(inside, 0.0, self.eager_penalty_s)

    def weight_read_time(self, n_tokens):
        """Weight-read time for a step of ``n_tokens`` (MoE: the expected share of experts touched)."""
        n = np.asarray(n_tokens, dtype=float)
        out = self.weight_read_s + np.zeros_like(n)
        if self.moe_expert_read_s > 0:
            touched = 1.0 - np.power(1.0 - self.moe_touch_fraction, np.maximum(n, 0.0))
            out = out + self.moe_expert_read_s * touched
        return out if out.ndim else float(out)

    def forward_time(self, n_tokens, kv_tokens):
        """Seconds for one forward pass over ``n_tokens`` query tokens reading ``kv_tokens`` KV tokens.

        Accepts scalars or numpy arrays (broadcast). Excludes the scheduler overhead (see :meth:`step_time`).
        """
        n = np.asarray(n_tokens, dtype=float)
        kv = np.asarray(kv_tokens, dtype=float)
        n_eff, penalty = self._padded(n)
        weights = self.weight_read_time(n_eff)
        compute = self.compute_s_per_token * n_eff
        if self.form == "hybrid":
            gemm = np.maximum(weights, compute)
        else:
            gemm = weights + compute
        t = self.t_fix_s + gemm + self.kv_read_s_per_token * kv + self.comm_s + self.comm_s_per_token * n_eff
        t = t + penalty
        t = np.where(n > 0, t, 0.0)
        return t if t.ndim else float(t)

    def forward_time_scalar(self, n_tokens: float, kv_tokens: float) -> float:
        """:meth:`forward_time` for plain floats (the simulator's hot path; same formula)."""
        if n_tokens <= 0:
            return 0.0
        n = n_tokens
        if self.cudagraph_sizes:
            return float(self.forward_time(n_tokens, kv_tokens))
        weights = self.weight_read_s
        if self.moe_expert_read_s > 0:
            weights += self.moe_expert_read_s * (1.0 - (1.0 - self.moe_touch_fraction) ** n)
        compute = self.compute_s_per_token * n
        gemm = (weights if weights > compute else compute) if self.form == "hybrid" else weights + compute
        return (self.t_fix_s + gemm + self.kv_read_s_per_token * kv_tokens + self.comm_s
                + self.comm_s_per_token * n)

    def sched_time(self, n_seqs):
        """Engine overhead of one step over ``n_seqs`` running sequences: per-step plus per-sequence host cost."""
        return self.t_sched_s + self.t_seq_s * n_seqs

    def step_time(self, n_tokens, kv_tokens, draft_s=0.0, n_seqs=None):
        """Forward + engine overhead + draft time: one engine step (``n_seqs`` defaults to ``n_tokens``)."""
        seqs = np.asarray(n_tokens if n_seqs is None else n_seqs, dtype=float)
        t = np.asarray(self.forward_time(n_tokens, kv_tokens)) + self.sched_time(seqs) + np.asarray(draft_s)
        return t if t.ndim else float(t)

    @property
    def compute_bound_tokens(self) -> float:
        """N* = weight read / compute per token: batched tokens where GEMMs turn compute-bound."""
        return self.weight_read_s / self.compute_s_per_token if self.compute_s_per_token > 0 else float("inf")

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def from_deployment(
        cls,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int = 1,
        quant: Quantization | str | None = None,
        kv_dtype_bytes: float = 2.0,
        *,
        eta_bw: float = ETA_BW,
        eta_compute: float = ETA_COMPUTE,
        eta_kv: float = ETA_KV,
        t_sched_s: float = T_SCHED_S,
        form: Literal["hybrid", "additive"] = "hybrid",
    ) -> StepTimeModel:
        """Roofline constants for ``model`` served on ``tp`` x ``gpu`` (docs/reference/theory-and-calibration.md §4)."""
        if tp < 1:
            raise ValueError("tp must be >= 1")
        q = Quantization(quant) if quant is not None else Quantization(model.native_quantization)
        pc = model.param_counts()
        bw = gpu.hbm_bandwidth_tbs * 1e12
        # Weights streamed per step = all weights except the input embedding (a gather, not a GEMM),
        # unless it is tied to the lm_head (§4.1 "total - input embedding").
        total_bytes = model.weight_bytes(q)
        embed_bytes = 0.0 if model.tie_word_embeddings else pc.embedding * 2.0
        streamed = total_bytes - embed_bytes
        routed_bytes = 0.0
        touch = 0.0
        if model.is_moe:
            width = model.moe_intermediate_size or model.intermediate_size
            expert = (3 if model.gated_mlp else 2) * model.hidden_size * width
            moe_layers = model.num_layers - model.first_k_dense_layers
            routed_bytes = moe_layers * int(model.num_experts or 0) * expert * LINEAR_BYTES_PER_PARAM[q]
            touch = min(1.0, (model.experts_per_token or 0) / float(model.num_experts or 1))
        # Active linear parameters per token (2 FLOPs each): everything but the input embedding.
        linear_active = pc.active - (0 if model.tie_word_embeddings else pc.embedding)
        eight_bit = q in EIGHT_BIT_COMPUTE
        tflops = (gpu.fp8_tflops if eight_bit and gpu.fp8_tflops else gpu.bf16_tflops) * 1e12
        comm_s = comm_tok = 0.0
        if tp > 1:
            link = (gpu.interconnect_gbs or 300.0) * 1e9 * ALLREDUCE_BW_EFFICIENCY
            ring = 2.0 * (tp - 1) / tp
            comm_s = 2 * model.num_layers * ALLREDUCE_LATENCY_S
            comm_tok = 2 * model.num_layers * model.hidden_size * 2.0 * ring / link
        notes = [
            f"{model.id} on {tp}x {gpu.name}, weights {q.value}, KV {kv_dtype_bytes:g} B/element",
            f"roofline (docs/reference/theory-and-calibration.md §4.3): eta_bw={eta_bw}, eta_compute={eta_compute}, "
            f"eta_kv={eta_kv}; {'8-bit' if eight_bit else '16-bit'} GEMMs at {tflops / 1e12:g} TFLOP/s",
        ]
        return cls(
            label=f"{model.id} TP{tp} {gpu.name} {q.value}",
            form=form,
            t_fix_s=LAUNCH_BASE_S + LAUNCH_PER_LAYER_S * model.num_layers,
            weight_read_s=(streamed - routed_bytes) / (tp * bw * eta_bw),
            compute_s_per_token=2.0 * linear_active / (tp * tflops * eta_compute),
            kv_read_s_per_token=model.kv_bytes_per_token(kv_dtype_bytes) / (tp * bw * eta_kv),
            comm_s=comm_s,
            comm_s_per_token=comm_tok,
            t_sched_s=t_sched_s,
            moe_expert_read_s=routed_bytes / (tp * bw * eta_bw),
            moe_touch_fraction=touch,
            source=Source.estimated,
            notes=notes,
        )


# The SpecDecode-Bench additive fit for Llama-3.1-8B-Instruct on 1x H100, vLLM 0.10
# (docs/reference/theory-and-calibration.md §2.3, `SpecDecode-Bench/simulator/predictor.py` class Llama8BH100).
LLAMA31_8B_H100_FIT = StepTimeModel(
    label="Llama-3.1-8B 1x H100 (SpecDecode-Bench additive fit)",
    form="additive",
    t_fix_s=5.88590713e-3,
    weight_read_s=0.0,
    compute_s_per_token=2.10103129e-05,
    kv_read_s_per_token=3.92645679e-08,
    t_sched_s=1.20683946e-3,
    source=Source.measured,
    notes=["fitted on instructcoder bs=1,8,16,32,64 (docs/reference/theory-and-calibration.md §2.3)"],
)


DraftMethod = Literal["none", "draft_model", "head", "parallel_head", "ngram"]


class DraftCost(SpecwiseModel):
    """Time the proposer spends per engine step, by method (docs/reference/theory-and-calibration.md §4.3)."""

    method: DraftMethod
    draft_model: StepTimeModel | None = Field(None, description="draft_model: the draft's own step model")
    head_fixed_s: float = Field(HEAD_FIXED_S, ge=0, description="head: per-step fixed cost")
    head_per_pass_s: float = Field(HEAD_PER_PASS_S, ge=0, description="head: cost per drafted position")
    head_kv_s_per_token: float = Field(HEAD_KV_S_PER_TOKEN, ge=0)
    head_s_per_spec_token: float = Field(HEAD_S_PER_SPEC_TOKEN, ge=0)
    ngram_fraction: float = Field(NGRAM_FRACTION, ge=0, description="ngram: share of the target forward")
    ngram_fixed_s: float = Field(0.0, ge=0, description="ngram: host time per step (measured calibrations)")
    ngram_s_per_seq: float = Field(0.0, ge=0, description="ngram: host time per running sequence per step")

    def time(self, batch_seqs, kv_tokens, k, extra_tokens=0, target_forward_s=0.0):
        """Seconds of drafting in one step for ``batch_seqs`` sequences drafting ``k`` tokens each.

        ``extra_tokens``: tokens the draft must also ingest in its first pass (newly verified tokens of
        the previous step beyond one per sequence, and prefill chunks). ``k`` may be an array (oracle).
        """
        b = np.asarray(batch_seqs, dtype=float)
        kk = np.asarray(k, dtype=float)
        kv = np.asarray(kv_tokens, dtype=float)
        active = (kk > 0) & (b > 0)
        if self.method == "none":
            t = np.zeros(np.broadcast(b, kk, kv).shape)
        elif self.method == "draft_model":
            assert self.draft_model is not None
            first = np.asarray(self.draft_model.forward_time(b + extra_tokens, kv))
            later = np.asarray(self.draft_model.forward_time(b, kv))
            t = first + np.maximum(kk - 1, 0) * later
        elif self.method == "head":
            t = (self.head_fixed_s + self.head_per_pass_s * kk + self.head_kv_s_per_token * kv
                 + self.head_s_per_spec_token * b * kk)
        elif self.method == "parallel_head":
            # P-EAGLE/DFlash/DSpark draft all positions in one pass: cost ~independent of k (§4.3).
            t = (self.head_fixed_s + self.head_per_pass_s + self.head_kv_s_per_token * kv
                 + self.head_s_per_spec_token * b * kk)
        else:  # ngram
            t = (self.ngram_fraction * np.asarray(target_forward_s, dtype=float) + self.ngram_fixed_s
                 + self.ngram_s_per_seq * b + 0.0 * kk)
        t = np.where(active, t, 0.0)
        return t if t.ndim else float(t)

    def time_scalar(self, batch_seqs: float, kv_tokens: float, k: int, extra_tokens: float = 0.0,
                    target_forward_s: float = 0.0) -> float:
        """:meth:`time` for plain numbers (the simulator's hot path; same formula)."""
        if k <= 0 or batch_seqs <= 0 or self.method == "none":
            return 0.0
        if self.method == "draft_model":
            assert self.draft_model is not None
            dm = self.draft_model
            first = dm.forward_time_scalar(batch_seqs + extra_tokens, kv_tokens)
            return first + (k - 1) * dm.forward_time_scalar(batch_seqs, kv_tokens) if k > 1 else first
        if self.method == "head":
            return (self.head_fixed_s + self.head_per_pass_s * k + self.head_kv_s_per_token * kv_tokens
                    + self.head_s_per_spec_token * batch_seqs * k)
        if self.method == "parallel_head":
            return (self.head_fixed_s + self.head_per_pass_s + self.head_kv_s_per_token * kv_tokens
                    + self.head_s_per_spec_token * batch_seqs * k)
        return self.ngram_fraction * target_forward_s + self.ngram_fixed_s + self.ngram_s_per_seq * batch_seqs

    @classmethod
    def for_method(
        cls,
        method: str,
        *,
        gpu: GPUSpec | None = None,
        draft: ModelSpec | None = None,
        draft_tp: int = 1,
        draft_quant: Quantization | str | None = None,
        kv_dtype_bytes: float = 2.0,
        target: ModelSpec | None = None,
        tp: int = 1,
    ) -> DraftCost:
        """Draft cost for a vLLM ``method`` (draft_model, eagle, eagle3, mtp, ngram, suffix, dflash, ...)."""
        m = method.lower()
        if m in ("none", "off", ""):
            return cls(method="none")
        if m in ("ngram", "[ngram]", "ngram_gpu", "suffix"):
            return cls(method="ngram")
        if m == "draft_model":
            if draft is None or gpu is None:
                raise ValueError("draft_model cost needs the draft ModelSpec and the GPU")
            sm = StepTimeModel.from_deployment(draft, gpu, tp=draft_tp, quant=draft_quant,
                                               kv_dtype_bytes=kv_dtype_bytes)
            return cls(method="draft_model", draft_model=sm)
        if m in ("eagle", "eagle3", "mtp", "medusa") or m.endswith("_mtp"):
            # KV read of the one-layer head scales with the target's per-layer KV width per GPU, relative
            # to the 8B/H100 fit (1 layer x 8 KV heads x 128 x 2 x 2 B, 3.35 TB/s).
            kv = HEAD_KV_S_PER_TOKEN
            if target is not None and gpu is not None:
                ref = 2 * 8 * 128 * 2.0 / 3.35e12
                ours = target.kv_bytes_per_token_per_layer(kv_dtype_bytes) / (tp * gpu.hbm_bandwidth_tbs * 1e12)
                kv = HEAD_KV_S_PER_TOKEN * ours / ref
            return cls(method="head", head_kv_s_per_token=kv)
        if m in ("dflash", "dspark", "p_eagle", "parallel"):
            return cls(method="parallel_head")
        raise ValueError(f"unknown speculative method '{method}'")


# The vLLM methods DraftCost.for_method prices (and "none"); anything else is refused where flags enter.
PRICED_METHODS = ("draft_model", "eagle", "eagle3", "mtp", "medusa", "ngram", "[ngram]", "ngram_gpu", "suffix",
                  "dflash", "dspark", "p_eagle", "parallel")


def is_priced_method(method: str) -> bool:
    """Whether :meth:`DraftCost.for_method` knows ``method`` (``*_mtp`` variants included)."""
    m = method.lower()
    return m in PRICED_METHODS or m.endswith("_mtp")


def draft_cost_ratio(
    target: ModelSpec,
    draft: ModelSpec | None,
    gpu: GPUSpec,
    tp: int = 1,
    draft_tp: int = 1,
    quant: Quantization | str | None = None,
    draft_quant: Quantization | str | None = None,
    kv_dtype_bytes: float = 2.0,
    context_tokens: int = 0,
    *,
    method: str = "draft_model",
    batch_size: int = 1,
    k: int = 1,
) -> float:
    """c = drafting time per drafted token / one target forward (Leviathan Def. 3.7; §1.3).

    The one definition of c in specwise (plan's pairing check, estimate's recommended k, simulate's draft
    cost all come from this step-time model). Both sides are priced for ``batch_size`` sequences of
    ``context_tokens`` each: the target forward over one token per sequence, the proposer's time for a step
    of ``k`` drafts (:class:`DraftCost`) divided by ``k``. A draft model costs one forward per drafted
    token, so ``k`` does not change its c; an EAGLE/MTP head's per-step fixed cost and n-gram's per-step
    lookup are spread over the ``k`` tokens they propose.
    """
    if batch_size < 1 or k < 1:
        raise ValueError("batch_size and k must be >= 1")
    t = StepTimeModel.from_deployment(target, gpu, tp=tp, quant=quant, kv_dtype_bytes=kv_dtype_bytes)
    kv = batch_size * context_tokens
    t_target = float(t.forward_time(batch_size, kv))
    cost = DraftCost.for_method(method, gpu=gpu, draft=draft, draft_tp=draft_tp, draft_quant=draft_quant,
                                kv_dtype_bytes=kv_dtype_bytes, target=target, tp=tp)
    return float(cost.time(batch_size, kv, k, target_forward_s=t_target)) / k / t_target


class CostRatio(SpecwiseModel):
    """c with the deployment it was priced for, so every printed c can say where it comes from."""

    value: float = Field(ge=0, description="c = drafting time per drafted token / target forward time")
    method: str
    gpu: str
    tp: int
    draft_tp: int | None = Field(None, description="draft_model only")
    batch_size: int
    k: int
    source: Source = Source.estimated
    assumed: list[str] = Field(default_factory=list,
                               description="inputs the caller did not know, with the default used")

    @classmethod
    def compute(cls, target: ModelSpec, draft: ModelSpec | None, gpu: GPUSpec, tp: int = 1, draft_tp: int = 1,
                quant: Quantization | str | None = None, draft_quant: Quantization | str | None = None, *,
                method: str = "draft_model", batch_size: int = 1, k: int = 1,
                assumed: list[str] | None = None) -> CostRatio:
        """:func:`draft_cost_ratio` plus the inputs it used (``assumed``: which of them are defaults)."""
        value = draft_cost_ratio(target, draft, gpu, tp, draft_tp, quant, draft_quant, method=method,
                                 batch_size=batch_size, k=k)
        return cls(value=value, method=method, gpu=gpu.name, tp=tp,
                   draft_tp=draft_tp if method == "draft_model" else None, batch_size=batch_size, k=k,
                   assumed=list(assumed or []))

    @property
    def basis(self) -> str:
        """What c was priced for, e.g. ``step-time model, H100-SXM, TP4, draft TP1, batch 1``."""
        parts = ["step-time model", self.gpu, f"TP{self.tp}"]
        if self.draft_tp is not None:
            parts.append(f"draft TP{self.draft_tp}")
        parts.append(f"batch {self.batch_size}")
        if self.method != "draft_model" and self.k > 1:
            parts.append(f"per-step cost spread over k={self.k}")
        text = ", ".join(parts)
        if self.assumed:
            text += f"; assumed: {', '.join(self.assumed)}"
        return text

    def describe(self) -> str:
        """E.g. ``c = 0.089 (step-time model, H100-SXM, TP4, draft TP1, batch 1)``."""
        return f"c = {format_cost_ratio(self.value)} ({self.basis})"


def format_cost_ratio(c: float) -> str:
    """Three decimals; four below 0.01 so an n-gram or head cost does not print as 0.000."""
    return f"{c:.3f}" if c >= 0.01 else f"{c:.4f}"


# ---- closed-loop analytic helpers (docs/reference/theory-and-calibration.md §8.3) -------------------------------------

def baseline_step_time(model: StepTimeModel, batch, mean_context):
    """Step time of a decode-only baseline step with ``batch`` sequences of mean context ``mean_context``."""
    b = np.asarray(batch, dtype=float)
    return model.step_time(b, b * mean_context)


def speculative_step_time(model: StepTimeModel, draft: DraftCost, batch, k, mean_context,
                          accepted_per_seq: float = 0.0):
    """Step time of a verify step: draft + target over B*(k+1) tokens + scheduler overhead."""
    b = np.asarray(batch, dtype=float)
    kk = np.asarray(k, dtype=float)
    kv = b * mean_context
    fwd = np.asarray(model.forward_time(b * (kk + 1), kv))
    d = draft.time(b, kv, kk, extra_tokens=b * accepted_per_seq, target_forward_s=fwd)
    return model.step_time(b * (kk + 1), kv, draft_s=d, n_seqs=b)


def closed_loop_speedup(model: StepTimeModel, draft: DraftCost, batch, k, mean_context,
                        acceptance_length: float):
    """S(B,k) = E[L(k)] * T_base(B) / T_SD(B,k): throughput ratio at a fixed batch (§8.3)."""
    base = baseline_step_time(model, batch, mean_context)
    spec = speculative_step_time(model, draft, batch, k, mean_context, acceptance_length - 1.0)
    out = acceptance_length * np.asarray(base) / np.asarray(spec)
    return out if np.ndim(out) else float(out)

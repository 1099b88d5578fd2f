"""Model and GPU specifications: the architecture facts every stage reasons about.

Parameter counts are computed from the architecture (never typed in), so a spec read from a catalog
entry, a local ``config.json`` or the hub is treated the same way.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, model_validator

from specwise.schemas.base import SpecwiseModel


class Quantization(str, Enum):
    """Weight formats a model can be served in (vLLM ``--quantization`` families)."""

    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"
    fp8 = "fp8"  # W8A8 FP8 (per-tensor/channel or 128x128 block scales)
    int8 = "int8"  # W8A8 INT8 (compressed-tensors / SmoothQuant style)
    int4_awq = "awq"  # W4A16, group size 128, fp16 scale + 4-bit zero point per group
    int4_gptq = "gptq-int4"  # W4A16, group size 128, fp16 scale + 4-bit zero per group
    int8_gptq = "gptq-int8"  # W8A16, group size 128
    bnb4 = "bnb-4bit"  # bitsandbytes NF4, block 64, double-quantised absmax
    bnb8 = "bnb-8bit"  # bitsandbytes LLM.int8()
    mxfp4 = "mxfp4"  # gpt-oss experts: 4-bit values + one 8-bit scale per 32


# Bytes per weight of a quantised linear layer, including scale/zero-point overhead.
#   AWQ/GPTQ int4, group 128: 0.5 B + (2 B fp16 scale + 0.5 B zero) / 128 = 0.51953
#   GPTQ int8, group 128:     1 B + (2 B + 1 B) / 128                     = 1.02344
#   NF4, block 64, double quant: 0.5 B + (1 B absmax + 256-block fp32 scales ~0.016 B) / 64
#   MXFP4, block 32: 0.5 B + 1 B / 32 = 0.53125
#   FP8/INT8 with per-channel scales: ~1 B (scales are < 0.1 % of the weights)
LINEAR_BYTES_PER_PARAM: dict[Quantization, float] = {
    Quantization.bf16: 2.0,
    Quantization.fp16: 2.0,
    Quantization.fp32: 4.0,
    Quantization.fp8: 1.0,
    Quantization.int8: 1.0,
    Quantization.int4_awq: 0.5 + 2.5 / 128,
    Quantization.int4_gptq: 0.5 + 2.5 / 128,
    Quantization.int8_gptq: 1.0 + 3.0 / 128,
    Quantization.bnb4: 0.5 + (1.0 + 4.0 / 256) / 64,
    Quantization.bnb8: 1.0 + 4.0 / 4096,
    Quantization.mxfp4: 0.5 + 1.0 / 32,
}

# Upper bounds on architecture sizes. They are ~10-1000x the largest public models (2026: hidden 16384 and
# 126 layers in Llama-3.1-405B, 262k vocabularies, 10M-token contexts, 512 experts) so that no real config is
# refused, while a typo or a hostile config.json (``num_hidden_layers: 1e30``) is rejected before the
# per-layer parameter count loops over it or the memory plan overflows a float.
MAX_HIDDEN_SIZE = 1 << 18
MAX_LAYERS = 4096
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 14
MAX_INTERMEDIATE_SIZE = 1 << 22
MAX_VOCAB_SIZE = 1 << 24
MAX_POSITIONS = 1 << 30
MAX_EXPERTS = 1 << 16
MAX_MTP_LAYERS = 64

# Weight formats whose matrix multiplies run at 8-bit throughput (weights *and* activations).
EIGHT_BIT_COMPUTE = {Quantization.fp8, Quantization.int8}


class SpeculatorKind(str, Enum):
    """What a catalog entry is when used as a draft."""

    model = "model"  # an ordinary causal LM (draft_model method)
    eagle = "eagle"
    eagle3 = "eagle3"
    mtp = "mtp"  # multi-token-prediction layers shipped inside the target checkpoint


class MLASpec(SpecwiseModel):
    """DeepSeek multi-head latent attention ranks."""

    kv_lora_rank: int = Field(gt=0, le=MAX_HIDDEN_SIZE)
    q_lora_rank: int | None = Field(None, gt=0, le=MAX_HIDDEN_SIZE)
    qk_rope_head_dim: int = Field(gt=0, le=MAX_HEAD_DIM)
    qk_nope_head_dim: int = Field(ge=0, le=MAX_HEAD_DIM)
    v_head_dim: int = Field(gt=0, le=MAX_HEAD_DIM)


class VisionSpec(SpecwiseModel):
    """A ViT vision tower (SigLIP-style: pre-LN blocks, biased linears, learned position embedding)."""

    num_layers: int = Field(gt=0, le=MAX_LAYERS)
    hidden_size: int = Field(gt=0, le=MAX_HIDDEN_SIZE)
    intermediate_size: int = Field(gt=0, le=MAX_INTERMEDIATE_SIZE)
    patch_size: int = Field(gt=0, le=1 << 12)
    image_size: int = Field(gt=0, le=1 << 16)
    num_channels: int = 3
    projector: Literal["gemma3"] = "gemma3"  # RMSNorm(vision hidden) + linear vision hidden -> text hidden

    def params(self, text_hidden: int) -> int:
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)  # qkvo, fc1, fc2, 2 LayerNorms
        patches = (self.image_size // self.patch_size) ** 2
        embeddings = self.num_channels * self.patch_size**2 * h + h + patches * h
        post_norm = 2 * h
        projector = h + h * text_hidden
        return self.num_layers * per_layer + embeddings + post_norm + projector


class ParamCounts(SpecwiseModel):
    """Parameter counts computed from the architecture."""

    total: int = Field(description="all parameters, embedding and lm_head counted once each (once if tied)")
    active: int = Field(description="parameters touched per token (MoE: shared + top-k experts)")
    embedding: int
    lm_head: int = Field(description="0 when tied to the embedding")
    per_layer_attention: int
    per_layer_mlp_total: int
    per_layer_mlp_active: int
    mtp: int = Field(0, description="MTP layers shipped with the checkpoint (not in total)")
    extra: int = Field(0, description="parameters outside the decoder, e.g. a vision tower")
    active_excluding_embedding: int = Field(
        0, description="active minus the input embedding (a lookup, no matmul): gpt-oss and DeepSeek count this way"
    )


class ModelSpec(SpecwiseModel):
    """Architecture facts of one model (base and -Instruct variants share a spec)."""

    id: str = Field(description="canonical id, usually the HF repo id")
    aliases: list[str] = Field(default_factory=list)
    family: str = Field(description="training lineage, e.g. 'llama3', 'qwen2.5', 'qwen3'")
    tokenizer_family: str = Field(description="tokenizers with equal names map text to the same ids")
    model_type: str = "llama"
    kind: SpeculatorKind = SpeculatorKind.model
    speculator_for: list[str] = Field(default_factory=list, description="target ids an EAGLE/MTP head was trained for")

    hidden_size: int = Field(gt=0, le=MAX_HIDDEN_SIZE)
    num_layers: int = Field(gt=0, le=MAX_LAYERS)
    num_heads: int = Field(gt=0, le=MAX_HEADS)
    num_kv_heads: int = Field(gt=0, le=MAX_HEADS)
    head_dim: int = Field(gt=0, le=MAX_HEAD_DIM)
    intermediate_size: int = Field(gt=0, le=MAX_INTERMEDIATE_SIZE)
    vocab_size: int = Field(gt=0, le=MAX_VOCAB_SIZE)
    draft_vocab_size: int | None = Field(None, gt=0, le=MAX_VOCAB_SIZE)
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # q/k/v biases (Qwen2, gpt-oss)
    qk_norm: bool = False  # per-head q/k RMSNorm (Qwen3, Gemma 3)
    norms_per_layer: int = 2  # Gemma 2/3 have 4
    gated_mlp: bool = True  # SwiGLU/GeGLU: gate, up, down; False: up, down

    num_experts: int | None = Field(None, gt=0, le=MAX_EXPERTS)
    experts_per_token: int | None = Field(None, gt=0, le=MAX_EXPERTS)
    moe_intermediate_size: int | None = Field(None, gt=0, le=MAX_INTERMEDIATE_SIZE)
    num_shared_experts: int = Field(0, ge=0, le=MAX_EXPERTS)
    first_k_dense_layers: int = Field(0, ge=0, le=MAX_LAYERS)
    mla: MLASpec | None = None

    sliding_window: int | None = Field(None, gt=0, le=MAX_POSITIONS)
    num_sliding_layers: int = Field(0, ge=0, le=MAX_LAYERS)  # layers whose KV is capped at sliding_window
    max_position_embeddings: int = Field(4096, gt=0, le=MAX_POSITIONS)
    num_mtp_layers: int = Field(0, ge=0, le=MAX_MTP_LAYERS)
    # parameters outside the decoder not described by `vision`
    extra_params: int = Field(0, ge=0, le=MAX_HIDDEN_SIZE * MAX_HIDDEN_SIZE * MAX_LAYERS)
    vision: VisionSpec | None = None  # multimodal checkpoints (Gemma 3 4B/12B/27B ship a SigLIP tower)
    o_proj_bias: bool = False  # gpt-oss
    attention_sinks: bool = False  # gpt-oss: one learned sink logit per head
    mlp_bias: bool = False  # gpt-oss: biased expert linears and router
    # Speculator heads (EAGLE/EAGLE-3) reuse parts of the target and add an input projection.
    shares_target_embedding: bool = False  # embed_tokens not in the checkpoint; vLLM reuses the target's
    shares_target_lm_head: bool = False  # EAGLE-1 heads project with the target's lm_head
    fc_input_multiple: int = 0  # fc: (m x hidden) -> hidden; EAGLE-1 m=2 (embed+hidden), EAGLE-3 m=3 (3 taps)
    attention_input_multiple: int = 1  # EAGLE-3 layer attends over [embed; hidden]: q/k/v read 2 x hidden
    native_quantization: Quantization = Quantization.bf16
    source: str = "catalog"

    @model_validator(mode="after")
    def _check_shape(self) -> ModelSpec:
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"{self.id}: num_attention_heads ({self.num_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_kv_heads})"
            )
        if self.num_experts and not self.experts_per_token:
            raise ValueError(f"{self.id}: MoE model needs num_experts_per_tok")
        if self.num_experts and self.experts_per_token and self.experts_per_token > self.num_experts:
            raise ValueError(f"{self.id}: num_experts_per_tok ({self.experts_per_token}) exceeds the "
                             f"{self.num_experts} experts")
        for name, value in (("sliding-window layers", self.num_sliding_layers),
                            ("first_k_dense_replace", self.first_k_dense_layers)):
            if value > self.num_layers:
                raise ValueError(f"{self.id}: {name} ({value}) exceeds num_hidden_layers ({self.num_layers})")
        return self

    # ---- parameters -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)

    def _attention_params(self) -> int:
        h = self.hidden_size
        if self.mla is not None:
            m = self.mla
            qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.num_heads * qk_head
            else:
                q = h * self.num_heads * qk_head
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
            kv += m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
            o = self.num_heads * m.v_head_dim * h
            return q + kv + o
        q_dim = self.num_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        h_in = h * self.attention_input_multiple
        params = h_in * q_dim + 2 * h_in * kv_dim + q_dim * h
        if self.attention_bias:
            params += q_dim + 2 * kv_dim
        if self.o_proj_bias:
            params += h
        if self.attention_sinks:
            params += self.num_heads
        if self.qk_norm:
            params += 2 * self.head_dim
        return params

    def _ffn(self, width: int) -> int:
        params = (3 if self.gated_mlp else 2) * self.hidden_size * width
        if self.mlp_bias:
            params += (2 if self.gated_mlp else 1) * width + self.hidden_size
        return params

    def _mlp_params(self, layer: int) -> tuple[int, int]:
        """(total, active) MLP parameters of decoder layer ``layer``."""
        if not self.is_moe or layer < self.first_k_dense_layers:
            p = self._ffn(self.intermediate_size)
            return p, p
        width = self.moe_intermediate_size or self.intermediate_size
        expert = self._ffn(width)
        router = (self.hidden_size + (1 if self.mlp_bias else 0)) * int(self.num_experts or 0)
        shared = self.num_shared_experts * expert
        total = int(self.num_experts or 0) * expert + router + shared
        active = int(self.experts_per_token or 0) * expert + router + shared
        return total, active

    def param_counts(self) -> ParamCounts:
        h = self.hidden_size
        attn = self._attention_params()
        norms = self.norms_per_layer * h
        total_layers = 0
        active_layers = 0
        mlp_total_last = mlp_active_last = 0
        for layer in range(self.num_layers):
            mt, ma = self._mlp_params(layer)
            total_layers += attn + mt + norms
            active_layers += attn + ma + norms
            mlp_total_last, mlp_active_last = mt, ma
        embedding = 0 if self.shares_target_embedding else self.vocab_size * h
        lm_vocab = self.draft_vocab_size or self.vocab_size
        lm_head = 0 if (self.tie_word_embeddings or self.shares_target_lm_head) else lm_vocab * h
        final_norm = h
        total_layers += self.fc_input_multiple * h * h
        active_layers += self.fc_input_multiple * h * h
        mtp = 0
        if self.num_mtp_layers:
            # DeepSeek-V3 MTP module: enorm + hnorm + eh_proj (2h -> h) + one MoE decoder layer + norm.
            mt, _ = self._mlp_params(self.num_layers)
            mtp = self.num_mtp_layers * (2 * h + 2 * h * h + attn + mt + norms + h)
        extra = self.extra_params + (self.vision.params(h) if self.vision else 0)
        total = total_layers + embedding + lm_head + final_norm + extra
        active = active_layers + embedding + lm_head + final_norm + extra
        return ParamCounts(
            total=total,
            active=active,
            embedding=embedding,
            lm_head=lm_head,
            per_layer_attention=attn,
            per_layer_mlp_total=mlp_total_last,
            per_layer_mlp_active=mlp_active_last,
            mtp=mtp,
            extra=extra,
            active_excluding_embedding=active - embedding,
        )

    def weight_bytes(self, quant: Quantization | str | None = None, include_mtp: bool = False) -> float:
        """Bytes of weights in ``quant``; embeddings, lm_head, norms and vision towers stay in 16 bits.

        MXFP4 (gpt-oss) quantises only the routed-expert weights; attention, router, embeddings and
        lm_head stay BF16 (model-configs.md, gpt-oss caveat).
        """
        q = Quantization(quant if quant is not None else self.native_quantization)
        pc = self.param_counts()
        linear = pc.total - pc.embedding - pc.lm_head - pc.extra
        norm_params = self.num_layers * self.norms_per_layer * self.hidden_size + self.hidden_size
        linear -= norm_params
        if include_mtp:
            linear += pc.mtp
        sixteen_bit = 4.0 if q is Quantization.fp32 else 2.0
        quantised = linear
        if q is Quantization.mxfp4 and self.is_moe:
            width = self.moe_intermediate_size or self.intermediate_size
            moe_layers = self.num_layers - self.first_k_dense_layers
            quantised = moe_layers * int(self.num_experts or 0) * self._ffn(width)
        return (
            quantised * LINEAR_BYTES_PER_PARAM[q]
            + (linear - quantised + pc.embedding + pc.lm_head + norm_params + pc.extra) * sixteen_bit
        )

    # ---- KV cache ---------------------------------------------------------------------------
    def kv_bytes_per_token_per_layer(self, kv_dtype_bytes: float) -> float:
        """KV bytes one token occupies in one full-attention layer."""
        if self.mla is not None:
            # one compressed latent (kv_lora_rank) + the shared rope key; no separate K and V
            return (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim) * kv_dtype_bytes
        return 2 * self.num_kv_heads * self.head_dim * kv_dtype_bytes

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0, context_len: int | None = None) -> float:
        """Average KV bytes per token over a sequence of ``context_len`` tokens.

        Sliding-window layers hold at most ``sliding_window`` tokens, so for long sequences their
        share per token shrinks; ``context_len=None`` counts every layer as full attention (the
        worst case, and what a block pool without a hybrid allocator reserves).
        """
        per_layer = self.kv_bytes_per_token_per_layer(kv_dtype_bytes)
        full_layers = self.num_layers - self.num_sliding_layers
        if context_len is None or not self.sliding_window or self.num_sliding_layers == 0:
            return per_layer * self.num_layers
        capped = min(context_len, self.sliding_window) / max(context_len, 1)
        return per_layer * (full_layers + self.num_sliding_layers * capped)


class GPUSpec(SpecwiseModel):
    """One accelerator's datasheet numbers (dense, no sparsity)."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    vendor: Literal["nvidia", "amd", "custom"] = "nvidia"
    memory_gib: float = Field(gt=0, description="total device memory in GiB (2^30 bytes)")
    hbm_bandwidth_tbs: float = Field(gt=0, description="peak memory bandwidth in TB/s (10^12 bytes/s)")
    bf16_tflops: float = Field(gt=0, description="dense BF16 peak in TFLOP/s")
    fp8_tflops: float | None = Field(None, description="dense FP8 peak in TFLOP/s; None if unsupported")
    int8_tops: float | None = None
    interconnect_gbs: float | None = Field(None, description="per-GPU NVLink/xGMI bandwidth, GB/s")
    source: str = "catalog"

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 1024**3)

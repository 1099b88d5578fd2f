"""Read a :class:`ModelSpec` from a Hugging Face ``config.json`` (local file or directory, or the hub).

Handles the config shapes of the catalogued families: Llama/Qwen/Mistral/Phi (flat), Gemma 3
multimodal (nested ``text_config``), MoE keys (``num_local_experts`` / ``num_experts`` /
``n_routed_experts``), DeepSeek MLA ranks and MTP layers, sliding-window layer patterns, and
``quantization_config``. The keys read here are parsed by :class:`HFConfigFields` first (types, ranges and
the upper bounds of :mod:`specwise.schemas.model`), so a missing, mistyped or absurd field is a one-line
:class:`UserError` naming the file and the field, never a traceback or a hang.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from specwise.catalog.models import split_quantization
from specwise.errors import UserError
from specwise.rowfiles import loads_bounded
from specwise.schemas.model import (
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_HIDDEN_SIZE,
    MAX_INTERMEDIATE_SIZE,
    MAX_LAYERS,
    MAX_MTP_LAYERS,
    MAX_POSITIONS,
    MAX_VOCAB_SIZE,
    MLASpec,
    ModelSpec,
    Quantization,
    SpeculatorKind,
)

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")

# quantization_config.quant_method (+ bits) -> Quantization
_QUANT_METHODS = {
    "fp8": Quantization.fp8,
    "awq": Quantization.int4_awq,
    "mxfp4": Quantization.mxfp4,
}

# model_type -> tokenizer family, for configs that are not in the catalog (lineage guesses are
# conservative: two different families are never reported compatible).
_TOKENIZER_BY_TYPE = {
    "qwen2": "qwen2",
    "qwen3": "qwen2",
    "qwen3_moe": "qwen2",
    "gemma2": "gemma",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "mixtral": "mistral-v1",
    "deepseek_v3": "deepseek-v3",
    "gpt_oss": "o200k-harmony",
    "phi3": "llama2",
}


def _whole_number(value: Any) -> Any:
    """JSON numbers only: ``true`` and ``"64"`` are not sizes (pydantic's lax mode would take them)."""
    if isinstance(value, (bool, str)):
        raise ValueError("expected a whole number")
    return value


def _size(low: int, high: int) -> Any:
    return Annotated[int, BeforeValidator(_whole_number), Field(ge=low, le=high)]


class HFConfigFields(BaseModel):
    """The keys of a Hugging Face ``config.json`` (or its ``text_config``) that specwise reads, typed.

    Other keys are kept untouched (``extra="allow"``): configs carry many that do not matter here.
    """

    model_config = ConfigDict(extra="allow")

    hidden_size: _size(1, MAX_HIDDEN_SIZE)
    num_hidden_layers: _size(1, MAX_LAYERS)
    num_attention_heads: _size(1, MAX_HEADS)
    vocab_size: _size(1, MAX_VOCAB_SIZE)
    num_key_value_heads: _size(1, MAX_HEADS) | None = None
    head_dim: _size(1, MAX_HEAD_DIM) | None = None
    intermediate_size: _size(1, MAX_INTERMEDIATE_SIZE) | None = None
    moe_intermediate_size: _size(1, MAX_INTERMEDIATE_SIZE) | None = None
    num_local_experts: _size(0, MAX_EXPERTS) | None = None
    num_experts: _size(0, MAX_EXPERTS) | None = None
    n_routed_experts: _size(0, MAX_EXPERTS) | None = None
    num_experts_per_tok: _size(1, MAX_EXPERTS) | None = None
    n_shared_experts: _size(0, MAX_EXPERTS) | None = None
    first_k_dense_replace: _size(0, MAX_LAYERS) | None = None
    kv_lora_rank: _size(0, MAX_HIDDEN_SIZE) | None = None
    q_lora_rank: _size(0, MAX_HIDDEN_SIZE) | None = None
    qk_rope_head_dim: _size(1, MAX_HEAD_DIM) | None = None
    qk_nope_head_dim: _size(0, MAX_HEAD_DIM) | None = None
    v_head_dim: _size(1, MAX_HEAD_DIM) | None = None
    sliding_window: _size(0, MAX_POSITIONS) | None = None
    use_sliding_window: bool | None = None
    sliding_window_pattern: _size(0, MAX_LAYERS) | None = None
    layer_types: list[str] | None = None
    max_position_embeddings: _size(0, MAX_POSITIONS) | None = None
    num_nextn_predict_layers: _size(0, MAX_MTP_LAYERS) | None = None
    draft_vocab_size: _size(0, MAX_VOCAB_SIZE) | None = None
    model_type: str | None = None
    architectures: list[str] | None = None
    tie_word_embeddings: bool | None = None
    attention_bias: bool | None = None
    quantization_config: dict[str, Any] | None = None


class _Verifier(BaseModel):
    model_config = ConfigDict(extra="allow")
    name_or_path: str | None = None


class _SpeculatorsConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    verifier: _Verifier | None = None


class HFConfigOuter(BaseModel):
    """The top level of a ``config.json``: the nesting keys (speculators format, multimodal ``text_config``)."""

    model_config = ConfigDict(extra="allow")

    architectures: list[str] | None = None
    speculators_model_type: str | None = None
    speculators_config: _SpeculatorsConfig | None = None
    draft_vocab_size: _size(0, MAX_VOCAB_SIZE) | None = None
    transformer_layer_config: dict[str, Any] | None = None
    text_config: dict[str, Any] | None = None
    model_type: str | None = None
    quantization_config: dict[str, Any] | None = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse(model: type[BaseModel], cfg: dict[str, Any], source: str, prefix: str = "") -> Any:
    """``model`` from ``cfg``; the first problem as one line naming the file and the field."""
    try:
        return model.model_validate(cfg)
    except ValidationError as exc:
        errors = exc.errors()
        missing = [prefix + ".".join(str(p) for p in e.get("loc", ())) for e in errors if e.get("type") == "missing"]
        err = errors[0]
        field = prefix + ".".join(str(p) for p in err.get("loc", ()))
        if missing:
            problem = f"config.json lacks {', '.join(missing)}"
        else:
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            if "exceeded maximum size" in msg:  # pydantic's wording for a float like 1e30 given as a size
                msg = "far too large"
            problem = f"config.json field {field} = {_short(err.get('input'))} is invalid ({msg})"
        raise UserError(f"{source}: {problem}; fix that field, or pass another config.json or a catalog name "
                        "(`specwise catalog`)") from None


def _quant_from_config(cfg: dict[str, Any]) -> Quantization | None:
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = str(qc.get("quant_method", "")).lower()
    bits = qc.get("bits") or qc.get("w_bit")
    if method == "gptq":
        return Quantization.int8_gptq if bits == 8 else Quantization.int4_gptq
    if method == "bitsandbytes":
        return Quantization.bnb8 if qc.get("load_in_8bit") else Quantization.bnb4
    if method in ("compressed-tensors", "compressed_tensors"):
        text = json.dumps(qc).lower()
        if "float" in text and '"num_bits": 8' in text:
            return Quantization.fp8
        if '"num_bits": 4' in text:
            return Quantization.int4_gptq
        if '"num_bits": 8' in text:
            return Quantization.int8
        return None
    return _QUANT_METHODS.get(method)


def _sliding_layers(cfg: dict[str, Any], num_layers: int) -> tuple[int | None, int]:
    window = cfg.get("sliding_window")
    if not window:
        return None, 0
    if cfg.get("use_sliding_window") is False:  # Qwen: key present, feature off
        return None, 0
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return window, min(num_layers, sum(1 for t in layer_types if "sliding" in t))
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 0:  # Gemma 3: every pattern-th layer is global
        return window, num_layers - num_layers // pattern
    if str(cfg.get("model_type", "")).startswith("gemma2"):  # alternating local/global
        return window, num_layers // 2
    if window >= (cfg.get("max_position_embeddings") or 0):
        return None, 0
    return window, num_layers


def _speculator_kind(cfg: HFConfigOuter) -> tuple[SpeculatorKind, list[str]]:
    """EAGLE/EAGLE-3 heads by architecture or speculators type; the verifier they were trained for."""
    arch = " ".join(cfg.architectures or []).lower()
    spec_type = (cfg.speculators_model_type or "").lower()
    verifier = cfg.speculators_config.verifier.name_or_path if cfg.speculators_config and \
        cfg.speculators_config.verifier else None
    targets = [verifier] if verifier else []
    if "eagle3" in arch or spec_type == "eagle3" or cfg.draft_vocab_size:
        return SpeculatorKind.eagle3, targets
    if "eagle" in arch or spec_type == "eagle":
        return SpeculatorKind.eagle, targets
    return SpeculatorKind.model, []


def spec_from_config(cfg: dict[str, Any], model_id: str, source: str) -> tuple[ModelSpec, Quantization | None]:
    """Build a spec from a parsed ``config.json`` (every key read is type- and range-checked first)."""
    outer = _parse(HFConfigOuter, cfg, source)
    kind, speculator_for = _speculator_kind(outer)
    prefix = ""
    if outer.transformer_layer_config is not None:  # speculators format: the decoder layer is nested
        layer = dict(outer.transformer_layer_config)
        cfg = {**layer, "draft_vocab_size": outer.draft_vocab_size,
               "num_hidden_layers": layer.get("num_hidden_layers", 1)}
        prefix = "transformer_layer_config."
    elif outer.text_config:
        cfg = {**outer.text_config, "quantization_config": outer.quantization_config}
        cfg.setdefault("model_type", outer.model_type)
        prefix = "text_config."
    cfg = _parse(HFConfigFields, cfg, source, prefix).model_dump(exclude_unset=True)
    hidden = cfg["hidden_size"]
    layers = cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    model_type = str(cfg.get("model_type") or "llama")
    mla = None
    if cfg.get("kv_lora_rank"):
        missing = [k for k in ("qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim") if cfg.get(k) is None]
        if missing:
            raise UserError(f"{source}: config.json has kv_lora_rank (MLA) but lacks {', '.join(missing)}; "
                            "pass a complete HF config.json")
        mla = MLASpec(
            kv_lora_rank=cfg["kv_lora_rank"],
            q_lora_rank=cfg.get("q_lora_rank") or None,
            qk_rope_head_dim=cfg["qk_rope_head_dim"],
            qk_nope_head_dim=cfg["qk_nope_head_dim"],
            v_head_dim=cfg["v_head_dim"],
        )
    window, sliding = _sliding_layers(cfg, layers)
    if "intermediate_size" not in cfg and not cfg.get("moe_intermediate_size"):
        raise UserError(f"{source}: config.json lacks intermediate_size; pass a complete HF config.json")
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = model_type.startswith("gemma")
    quant = _quant_from_config(cfg)
    gemma = model_type.startswith("gemma")
    fields = dict(
        id=model_id,
        family=model_type,
        tokenizer_family=_TOKENIZER_BY_TYPE.get(model_type, f"{model_type}:{cfg['vocab_size']}"),
        model_type=model_type,
        kind=kind,
        speculator_for=speculator_for,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=cfg.get("intermediate_size") or cfg.get("moe_intermediate_size"),
        vocab_size=cfg["vocab_size"],
        draft_vocab_size=cfg.get("draft_vocab_size"),
        tie_word_embeddings=bool(tied),
        attention_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text"),
        norms_per_layer=4 if gemma else (3 if kind is SpeculatorKind.eagle3 else 2),
        num_experts=experts or None,
        experts_per_token=cfg.get("num_experts_per_tok") if experts else None,
        moe_intermediate_size=cfg.get("moe_intermediate_size") if experts else None,
        num_shared_experts=cfg.get("n_shared_experts") or 0,
        first_k_dense_layers=cfg.get("first_k_dense_replace") or 0,
        mla=mla,
        sliding_window=window,
        num_sliding_layers=sliding,
        max_position_embeddings=cfg.get("max_position_embeddings") or 4096,
        num_mtp_layers=cfg.get("num_nextn_predict_layers") or 0,
        native_quantization=quant or (Quantization.fp32 if (cfg.get("torch_dtype") or cfg.get("dtype")) == "float32" else Quantization.bf16),
        # EAGLE heads reuse the target's embedding (EAGLE-1 also its lm_head) and add an fc input projection
        shares_target_embedding=kind is not SpeculatorKind.model,
        shares_target_lm_head=kind is SpeculatorKind.eagle,
        fc_input_multiple={SpeculatorKind.eagle3: 3, SpeculatorKind.eagle: 2}.get(kind, 0),
        attention_input_multiple=2 if kind is SpeculatorKind.eagle3 else 1,
        source=source,
    )
    try:
        spec = ModelSpec(**fields)
    except ValidationError as exc:  # the fields are in range one by one, but not together (heads % kv heads, ...)
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix(f"{model_id}: ")
        raise UserError(f"{source}: config.json is inconsistent ({where + ': ' if where else ''}{msg}); "
                        "fix it or pass a complete HF config.json") from None
    return spec, quant


# Largest config.json read: real ones are a few KB (the biggest, with per-layer quantisation lists, ~1 MB).
_MAX_CONFIG_BYTES = 16 << 20


def _read_json_object(cfg_path: Path) -> dict[str, Any]:
    """The file as a JSON object; unreadable, huge, non-JSON, too deeply nested or non-object files are one line."""
    try:
        if cfg_path.stat().st_size > _MAX_CONFIG_BYTES:
            raise UserError(f"{cfg_path} is larger than {_MAX_CONFIG_BYTES >> 20} MiB, which no config.json is; "
                            "pass a valid HF config.json")
        cfg = loads_bounded(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: not JSON, or nested too deeply
        raise UserError(f"cannot read {cfg_path} as JSON ({exc}); pass a valid HF config.json") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_path} is not a JSON object; pass a valid HF config.json")
    return cfg


def spec_from_path(path: Path) -> tuple[ModelSpec, Quantization | None]:
    """Spec from a local model directory (its ``config.json``) or a ``config.json`` file."""
    cfg_path = path / "config.json" if path.is_dir() else path
    if not cfg_path.is_file():
        raise UserError(f"{path} has no config.json; pass the model directory that contains it, or the file itself")
    cfg = _read_json_object(cfg_path)
    model_id = path.name if path.is_dir() else path.parent.name or path.stem
    _, name_quant = split_quantization(model_id)
    spec, quant = spec_from_config(cfg, model_id, f"config: {cfg_path}")
    return spec, quant or name_quant


def spec_from_hub(repo_id: str, catalog_error: Exception) -> tuple[ModelSpec, Quantization | None]:
    """Download ``config.json`` of ``repo_id`` with huggingface_hub; clear error when offline."""
    offline_hint = (
        f"{catalog_error} It is not in the catalog and the Hugging Face hub could not be used ({{why}}). "
        "Offline alternatives: a catalog name (`specwise catalog`), a local model directory, or a config.json path."
    )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError(offline_hint.format(why="huggingface_hub is not installed: pip install 'specwise[hub]'")) from None
    import logging

    hub_logger = logging.getLogger("huggingface_hub")
    previous_level = hub_logger.level
    # huggingface_hub logs its retries (with tracebacks) to stderr; the user gets one line from us instead.
    hub_logger.setLevel(logging.CRITICAL)
    try:
        cfg_file = hf_hub_download(repo_id, "config.json", etag_timeout=5)
    except Exception as exc:  # network errors, gated repos, 404: all mean "use an offline source"
        raise UserError(offline_hint.format(why=type(exc).__name__)) from None
    finally:
        hub_logger.setLevel(previous_level)
    _, name_quant = split_quantization(repo_id)
    cfg = _read_json_object(Path(cfg_file))
    spec, quant = spec_from_config(cfg, repo_id, f"hub: {repo_id}")
    return spec, quant or name_quant

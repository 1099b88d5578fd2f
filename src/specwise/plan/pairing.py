"""Is a draft a sensible partner for a target? Tokenizer, lineage, size ratio, cost ratio, alternatives."""

from __future__ import annotations

from specwise.catalog.models import list_models
from specwise.schemas.model import ModelSpec, SpeculatorKind


def _active_params(spec: ModelSpec) -> int:
    return spec.param_counts().active


def smaller_siblings(target: ModelSpec, draft_id: str) -> list[ModelSpec]:
    """Catalog draft candidates with the target's tokenizer that are smaller than ``draft_id``, largest first."""
    current = next((m for m in list_models() if m.id == draft_id), None)
    limit = _active_params(current) if current else _active_params(target)
    out = [
        m
        for m in list_models()
        if m.kind == SpeculatorKind.model
        and m.tokenizer_family == target.tokenizer_family
        and m.id != target.id
        and _active_params(m) < limit
    ]
    return sorted(out, key=_active_params, reverse=True)

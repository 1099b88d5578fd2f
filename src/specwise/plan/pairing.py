"""Is a draft a sensible partner for a target? Tokenizer, lineage, size ratio, cost ratio, alternatives.

Tokenizers and padded vocabularies
    A draft's token ids must mean the same text as the target's. Same tokenizer family => same ids.
    ``vocab_size`` in config.json is the embedding row count, often padded past the real tokenizer:
    Qwen2.5 <= 3B and Qwen3 use 151936 rows, Qwen2.5 >= 7B 152064, while the tokenizer itself has
    about 151.6k entries (model-configs.md). Padding rows are never produced by the tokenizer, so
    a 151936-row draft and a 152064-row target of one family agree on every real id: harmless for
    correctness. vLLM is stricter: ``draft_model`` requires equal ``vocab_size`` unless
    ``use_heterogeneous_vocab=true`` (0.25+; docs/reference/vllm-speculative-decoding.md §1.5), so the launch config
    sets it. Padding is *not* harmless when the sizes differ because real tokens differ (another
    tokenizer, added special tokens): then ids disagree and acceptance collapses, or the server refuses.

Cost ratio
    ``c = drafting time per drafted token / target forward`` at batch 1 (decode is memory-bound there),
    from the step-time model shared with ``estimate`` and ``simulate`` (:func:`specwise.perf.draft_cost_ratio`,
    docs/reference/theory-and-calibration.md §4.3): roofline weight read + launch cost + TP all-reduces per forward, the
    SpecDecode-Bench EAGLE head cost for EAGLE/MTP, n-gram at 0.59 % of a target forward per step (§2.3).
    The draft runs on the plan's draft TP (vLLM's default: the target's TP). Estimates, not measurements.
"""

from __future__ import annotations

import math

from specwise.catalog.models import list_models
from specwise.perf.steptime import CostRatio, format_cost_ratio
from specwise.schemas.model import GPUSpec, ModelSpec, Quantization, SpeculatorKind
from specwise.schemas.plan import Alternative, PairingReport

SWEET_SPOT = (8.0, 12.0)
MIN_USEFUL_RATIO = 4.0  # a draft above a quarter of the target's size costs too much per step to list  # target:draft parameter ratio the framework recommends

# Real tokenizer sizes (regular + special tokens) where config vocab sizes are padded. Qwen2.5:
# 151,643 BPE tokens + 22 specials = 151,665 ("about 151.6k", model-configs.md).
TOKENIZER_SIZE = {"qwen2": 151_665}


def size_params(spec: ModelSpec) -> int:
    """Parameters the size ratio compares: total for dense models, active for MoE."""
    pc = spec.param_counts()
    return pc.active if spec.is_moe else pc.total


def smaller_siblings(target: ModelSpec, draft_id: str) -> list[ModelSpec]:
    """Catalog drafts with the target's tokenizer that are smaller than ``draft_id``, largest first."""
    current = next((m for m in list_models() if m.id == draft_id), None)
    limit = size_params(current) if current else size_params(target)
    out = [
        m for m in list_models()
        if m.kind == SpeculatorKind.model and m.tokenizer_family == target.tokenizer_family
        and m.id != target.id and size_params(m) < limit and not m.is_moe
    ]
    return sorted(out, key=size_params, reverse=True)


def size_ratio_score(ratio: float) -> float:
    """1.0 inside the 1:8-1:12 sweet spot; falls linearly in log-ratio to 0 at 4x outside it."""
    lo, hi = SWEET_SPOT
    if lo <= ratio <= hi:
        return 1.0
    edge = lo if ratio < lo else hi
    return max(0.0, 1.0 - abs(math.log(ratio / edge)) / math.log(4.0))


def cost_ratio(
    target: ModelSpec,
    target_quant: Quantization | str,
    tp: int,
    method: str,
    gpu: GPUSpec,
    draft: ModelSpec | None = None,
    draft_quant: Quantization | str | None = None,
    draft_tp: int | None = None,
    k: int = 1,
) -> CostRatio:
    """c at batch 1 for the plan's deployment (:func:`specwise.perf.draft_cost_ratio`)."""
    return CostRatio.compute(target, draft if method == "draft_model" else None, gpu, tp, draft_tp or tp,
                             target_quant, draft_quant, method=method, batch_size=1, k=k)


def _vocab_assessment(target: ModelSpec, draft: ModelSpec, method: str) -> tuple[bool, str]:
    if target.tokenizer_family != draft.tokenizer_family:
        return False, (
            f"different tokenizers ({target.tokenizer_family} vs {draft.tokenizer_family}): draft ids mean other "
            "text to the target, so nearly every draft token is rejected (or vLLM refuses the vocab mismatch)"
        )
    if method in ("eagle", "eagle3"):
        extra = (f"; its lm_head predicts a {draft.draft_vocab_size}-token subset mapped onto the target vocabulary"
                 if draft.draft_vocab_size else "")
        return True, f"head trained on the target's tokenizer{extra}"
    if target.vocab_size == draft.vocab_size:
        return True, f"same tokenizer and vocab_size ({target.vocab_size})"
    real = TOKENIZER_SIZE.get(target.tokenizer_family)
    if real and min(target.vocab_size, draft.vocab_size) >= real:
        return True, (
            f"same tokenizer; vocab_size {draft.vocab_size} vs {target.vocab_size} differ only in padding rows "
            f"past the {real}-entry tokenizer, which no text maps to: every real id agrees. vLLM's draft_model "
            "still requires equal vocab_size unless use_heterogeneous_vocab=true (vLLM >= 0.25)"
        )
    return False, (
        f"same tokenizer family but vocab_size {draft.vocab_size} vs {target.vocab_size} and no known padding "
        "explanation: check that both tokenizers list the same tokens"
    )


def _lineage(target: ModelSpec, draft: ModelSpec) -> tuple[bool, str]:
    if draft.family == target.family:
        return True, f"same family ({target.family}): similar training data, higher acceptance"
    if draft.tokenizer_family == target.tokenizer_family:
        return False, (
            f"related models ({draft.family} draft, {target.family} target) sharing a tokenizer: different "
            "training or fine-tuning usually lowers acceptance; measure it with `specwise estimate`"
        )
    return False, f"unrelated families ({draft.family} vs {target.family})"


def alternatives(
    target: ModelSpec, target_quant: Quantization | str, exclude: str | None = None
) -> list[Alternative]:
    """Other speculators for ``target``: sweet-spot siblings, EAGLE heads, MTP, n-gram."""
    out: list[Alternative] = []
    t_size = size_params(target)
    siblings = [
        m for m in list_models()
        if m.kind == SpeculatorKind.model and m.tokenizer_family == target.tokenizer_family
        and m.id not in (target.id, exclude) and not m.is_moe and t_size / size_params(m) >= MIN_USEFUL_RATIO
    ]
    # Same family first (closest to the 1:10 middle of the sweet spot), then related lineages.
    def closeness(m: ModelSpec) -> float:
        return abs(math.log(t_size / size_params(m) / 10.0))

    same = sorted((m for m in siblings if m.family == target.family), key=closeness)[:4]
    related = sorted((m for m in siblings if m.family != target.family), key=closeness)[:2]
    for m in same + related:
        ratio = t_size / size_params(m)
        where = "inside" if SWEET_SPOT[0] <= ratio <= SWEET_SPOT[1] else "outside"
        kin = "sibling" if m.family == target.family else f"related ({m.family})"
        out.append(Alternative(
            method="draft_model", draft=m.id, size_ratio=ratio, draft_weights_gib=m.weight_bytes() / 2**30,
            reason=f"{kin}, 1:{ratio:.0f} ({where} the 1:8-1:12 sweet spot)",
        ))
    names = {target.id.lower(), *(a.lower() for a in target.aliases)}
    for m in list_models():
        if m.kind in ("eagle", "eagle3") and m.id != exclude and any(t.lower() in names for t in m.speculator_for):
            out.append(Alternative(
                method=m.kind, draft=m.id, draft_weights_gib=m.weight_bytes() / 2**30,  # type: ignore[arg-type]
                reason=f"{m.kind.upper()} head trained on this target: one layer of weights and KV, "
                "typically the best acceptance per cost",
            ))
    if target.num_mtp_layers:
        pc = target.param_counts()
        from specwise.schemas.model import LINEAR_BYTES_PER_PARAM

        gib = pc.mtp * LINEAR_BYTES_PER_PARAM[Quantization(target_quant)] / 2**30
        out.append(Alternative(method="mtp", draft=None, draft_weights_gib=gib,
                               reason=f"the checkpoint ships {target.num_mtp_layers} MTP layer(s) trained with it"))
    out.append(Alternative(method="ngram", draft=None, draft_weights_gib=0.0,
                           reason="prompt lookup: no weights, no KV; pays off on copy-heavy work "
                           "(summarisation, RAG, code edits)"))
    return out


def pair_report(
    target: ModelSpec,
    target_quant: Quantization | str,
    tp: int,
    gpu: GPUSpec,
    method: str | None,
    draft: ModelSpec | None = None,
    draft_quant: Quantization | str | None = None,
    draft_tp: int | None = None,
    k: int = 1,
) -> PairingReport:
    """Pairing report for target + speculator (``method`` None: no speculation, alternatives only)."""
    alts = alternatives(target, target_quant, exclude=draft.id if draft else None)
    base = dict(tokenizer_family_target=target.tokenizer_family, vocab_size_target=target.vocab_size,
                alternatives=alts, method=method)
    if method is None:
        return PairingReport(tokenizer_compatible=True, notes=["no speculation configured"], **base)
    cost = cost_ratio(target, target_quant, tp, method, gpu, draft, draft_quant, draft_tp, k)
    c = cost.value
    c_note = f"estimated: {cost.basis}; calibrate with bench"
    if method in ("ngram", "mtp"):
        note = ("ngram proposes from the request's own tokens" if method == "ngram"
                else "MTP layers belong to the target: same tokenizer and training")
        return PairingReport(tokenizer_compatible=True, same_family=True, lineage_note=note, cost_ratio=c,
                             cost_ratio_note=c_note, vocab_note="same model", **base)
    assert draft is not None
    compatible, vocab_note = _vocab_assessment(target, draft, method)
    same, lineage_note = _lineage(target, draft)
    ratio = size_params(target) / size_params(draft)
    head = method in ("eagle", "eagle3")
    notes = []
    if method == "draft_model" and tp > 1 and (draft_tp or tp) == tp:
        c_one = cost_ratio(target, target_quant, tp, method, gpu, draft, draft_quant, 1, k).value
        if c_one < c:
            notes.append(f"with draft_tensor_parallel_size=1 the draft skips its all-reduces: c = "
                         f"{format_cost_ratio(c_one)} instead of {format_cost_ratio(c)}, but its weights and KV "
                         "then sit whole on one GPU (see the memory plan)")
    if head:
        notes.append("EAGLE heads are judged by what they were trained on, not by size: no size score")
    return PairingReport(
        tokenizer_compatible=compatible, tokenizer_family_draft=draft.tokenizer_family,
        vocab_size_draft=draft.vocab_size, vocab_note=vocab_note, same_family=same, lineage_note=lineage_note,
        size_ratio=ratio, size_ratio_score=None if head else size_ratio_score(ratio),
        cost_ratio=c, cost_ratio_note=c_note, notes=notes, **base,
    )

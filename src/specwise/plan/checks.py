"""The framework's named rules for a plan, each with its threshold and the plan's value."""

from __future__ import annotations

from specwise.perf.steptime import format_cost_ratio
from specwise.schemas.plan import Check, MemoryPlan, PairingReport

DRAFT_VRAM_MAX = 0.15  # draft weights above ~15 % of GPU memory eat the KV cache speculation needs
TARGET_VRAM_MAX = 0.70  # a target above 70 % of GPU memory leaves too little for draft + KV
DRAFT_RATIO_MIN = 8.0  # target:draft below 1:8 -> the draft is larger (slower) than needed
COST_RATIO_MAX = 1.0  # c >= 1: a draft step costs a whole target step, so no acceptance rate can pay it back


def plan_checks(memory: MemoryPlan, pairing: PairingReport | None) -> list[Check]:
    s = memory.settings
    spec = memory.speculative
    chosen = spec or memory.baseline
    checks: list[Check] = []
    target_frac = memory.baseline.target_weights_gib_per_gpu / memory.baseline.total_gib
    checks.append(Check(
        name="target_weights_share", passed=target_frac <= TARGET_VRAM_MAX, value=target_frac,
        threshold=TARGET_VRAM_MAX, unit="fraction of GPU memory",
        message=(f"target weights take {target_frac:.0%} of each GPU before any draft"
                 + ("" if target_frac <= TARGET_VRAM_MAX else
                    ": little room for a draft and KV; quantise the target or add GPUs")),
    ))
    if spec is not None and s.method not in (None, "ngram"):
        draft_frac = spec.draft_weights_gib_per_gpu / spec.total_gib
        checks.append(Check(
            name="draft_weights_share", passed=draft_frac <= DRAFT_VRAM_MAX, value=draft_frac,
            threshold=DRAFT_VRAM_MAX, unit="fraction of GPU memory",
            message=(f"draft weights take {draft_frac:.1%} of the fullest GPU"
                     + ("" if draft_frac <= DRAFT_VRAM_MAX else ": the draft is crowding out the KV cache")),
        ))
    room = chosen.max_concurrency >= 1.0
    checks.append(Check(
        name="kv_fits_max_model_len", passed=room, value=chosen.max_concurrency, threshold=1.0,
        unit="max_model_len sequences",
        message=(f"KV cache holds {chosen.kv_cache_tokens} tokens = {chosen.max_concurrency:.2f} sequences of "
                 f"max_model_len {s.max_model_len}" + ("" if room else ": vLLM refuses to start; lower "
                                                       "--max-model-len or free memory")),
    ))
    if pairing is not None and s.method == "draft_model" and pairing.size_ratio is not None:
        ok = pairing.size_ratio >= DRAFT_RATIO_MIN
        better = next((a for a in pairing.alternatives if a.method == "draft_model"
                       and a.size_ratio and a.size_ratio >= DRAFT_RATIO_MIN), None)
        hint = f"; a smaller draft such as {better.draft} (1:{better.size_ratio:.0f}) costs less" if better and not ok else ""
        checks.append(Check(
            name="draft_size_ratio", passed=ok, value=pairing.size_ratio, threshold=DRAFT_RATIO_MIN,
            unit="target params / draft params",
            message=f"target:draft = {pairing.size_ratio:.1f}:1 (sweet spot 8-12:1){hint}",
        ))
    if pairing is not None and pairing.cost_ratio is not None:
        cheap = pairing.cost_ratio < COST_RATIO_MAX
        checks.append(Check(
            name="draft_step_cost", passed=cheap, value=pairing.cost_ratio, threshold=COST_RATIO_MAX,
            unit="c = drafting time per drafted token / target forward (estimated, batch 1)",
            message=(f"c = {format_cost_ratio(pairing.cost_ratio)}" + ("" if cheap else
                     ": a draft step costs at least a target step (e.g. a 16-bit draft for a 4-bit or MoE "
                     "target); speculation cannot pay off"))))
    if pairing is not None and s.method is not None:
        checks.append(Check(
            name="tokenizer_compatible", passed=pairing.tokenizer_compatible, unit="",
            message=pairing.vocab_note,
        ))
    fits_msg = "fits" if memory.fits else "does not fit"
    if not memory.fits and memory.suggestions:
        fits_msg += "; would fit: " + "; ".join(
            f"{x.action} -> {x.kv_cache_tokens} KV tokens, {x.max_concurrency:.1f} max concurrency"
            for x in memory.suggestions)
    checks.append(Check(
        name="fits", passed=memory.fits, value=chosen.kv_cache_gib, threshold=0.0, unit="GiB of KV cache",
        message=f"{'speculative' if spec else 'baseline'} plan {fits_msg}",
    ))
    return checks

"""``make_plan``: memory budget + pairing + checks + launch config for one :class:`PlanRequest`."""

from __future__ import annotations

from specwise.catalog.resolve import load_model_spec
from specwise.plan.checks import plan_checks
from specwise.plan.config import emit_launch_config
from specwise.plan.memory import find_speculator, plan_memory, resolve_gpu
from specwise.perf.calibration import calibrated_cost_ratio
from specwise.perf.steptime import format_cost_ratio
from specwise.plan.pairing import pair_report
from specwise.schemas.plan import PlanRequest, PlanResult


def make_plan(req: PlanRequest) -> PlanResult:
    """Everything ``specwise plan`` reports, as one typed result (no rendering)."""
    memory = plan_memory(req)
    s = memory.settings
    target, _ = load_model_spec(req.target)
    gpu = resolve_gpu(req)
    draft = None
    draft_name = req.draft
    if req.draft is not None:
        draft, _ = load_model_spec(req.draft)
    elif s.method in ("eagle", "eagle3"):
        draft = find_speculator(target, s.method)
        draft_name = draft.id if draft else None
    pairing = pair_report(target, s.target_quant, s.tp, gpu, s.method, draft, s.draft_quant, s.draft_tp,
                          k=s.num_speculative_tokens)
    measured = calibrated_cost_ratio(gpu.name, s.vllm_version, target, draft, s.method or "", s.num_speculative_tokens)
    if measured is not None:
        pairing.notes.append(f"measured c = {format_cost_ratio(measured[0])} ({measured[1]}): host-side costs the "
                             "roofline estimate above does not see; `specwise simulate` prices with it")
    heterogeneous = bool(draft is not None and s.method == "draft_model" and pairing.tokenizer_compatible
                         and draft.vocab_size != target.vocab_size)
    config = emit_launch_config(s, req.target, draft_name, req.guard_schedule, heterogeneous_vocab=heterogeneous)
    return PlanResult(request=req, memory=memory, pairing=pairing, checks=plan_checks(memory, pairing), config=config)

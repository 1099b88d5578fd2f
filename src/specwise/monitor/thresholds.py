"""Where the monitor's lines come from: a decision file (`specwise decide`), command-line flags, or the rule of thumb.

The rule of thumb is the generic advice that speculation clearly pays above ~0.65 acceptance and should be turned
off below ~0.5; it knows nothing of this pair's step-time ratio, so every output that uses it says so. A decision
file's ``monitor`` block (:class:`specwise.schemas.decision.MonitorThresholds`) carries this pair's break-even,
net-negative and healthy lines, the crossover load and the SLO; a flag overrides any single value.
"""

from __future__ import annotations

from pathlib import Path

from specwise.errors import UserError
from specwise.schemas.decision import Decision
from specwise.schemas.monitor import Thresholds

__all__ = ["RULE_OF_THUMB_HEALTHY", "RULE_OF_THUMB_NET_NEGATIVE", "load_decision", "resolve_thresholds"]

RULE_OF_THUMB_HEALTHY = 0.65
RULE_OF_THUMB_NET_NEGATIVE = 0.5
# Margin above break-even at which a decision without an explicit healthy line calls acceptance healthy.
HEALTHY_MARGIN = 0.05


def load_decision(path: Path) -> Decision:
    if not path.exists():
        raise UserError(f"decision file '{path}' not found (write one with `specwise decide ... --out FILE`)")
    try:
        return Decision.model_validate_json(path.read_text())
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: not a specwise decision JSON ({first})") from None


def _slo(metric: str | None, target: float | None) -> tuple[float | None, float | None]:
    """(TPOT p99, TTFT p99) from the decision's SLO metric name."""
    if target is None or not metric:
        return None, None
    m = metric.lower()
    if "ttft" in m or "first" in m:
        return None, target
    if "tpot" in m or "itl" in m or "per_output" in m or "token" in m:
        return target, None
    return None, None


def resolve_thresholds(
    decision_path: Path | None = None,
    *,
    break_even: float | None = None,
    net_negative: float | None = None,
    healthy: float | None = None,
    baseline: float | None = None,
    crossover_batch: float | None = None,
    crossover_qps: float | None = None,
    slo_tpot_p99_s: float | None = None,
    slo_ttft_p99_s: float | None = None,
) -> Thresholds:
    """Lines from the decision (if given), overridden by any flag; the rule of thumb fills what is left."""
    notes: list[str] = []
    src = "rule_of_thumb"
    vals: dict = {}
    if decision_path is not None:
        mon = load_decision(decision_path).monitor
        src = "decision" if mon.thresholds_source == "decision" else "rule_of_thumb"
        be = mon.break_even_acceptance
        vals = {
            "break_even_acceptance": be,
            "net_negative_acceptance": mon.net_negative_acceptance if mon.net_negative_acceptance is not None else be,
            "healthy_acceptance": mon.healthy_acceptance if mon.healthy_acceptance is not None
            else (be + HEALTHY_MARGIN if be is not None else None),
            "k": mon.k, "expected_acceptance": mon.expected_acceptance, "baseline_acceptance": mon.baseline_acceptance,
            "crossover_batch_size": mon.crossover_batch_size, "crossover_qps": mon.crossover_qps,
            "crossover_source": str(mon.crossover_source) if mon.crossover_source else None,
        }
        vals["slo_tpot_p99_s"], vals["slo_ttft_p99_s"] = _slo(mon.slo_metric, mon.slo_p99_target_s)
        if be is None:
            notes.append(f"{decision_path} has no break-even acceptance: rule-of-thumb lines used for acceptance")
    flags = {
        "break_even_acceptance": break_even, "net_negative_acceptance": net_negative, "healthy_acceptance": healthy,
        "baseline_acceptance": baseline, "crossover_batch_size": crossover_batch, "crossover_qps": crossover_qps,
        "slo_tpot_p99_s": slo_tpot_p99_s, "slo_ttft_p99_s": slo_ttft_p99_s,
    }
    acceptance_flags = any(flags[k] is not None for k in
                           ("break_even_acceptance", "net_negative_acceptance", "healthy_acceptance"))
    for key, value in flags.items():
        if value is not None:
            vals[key] = value
    if acceptance_flags:
        src = "flags"
        if break_even is not None and net_negative is None:
            vals["net_negative_acceptance"] = break_even
        if break_even is not None and healthy is None:
            vals["healthy_acceptance"] = break_even + HEALTHY_MARGIN
    if vals.get("break_even_acceptance") is None and vals.get("net_negative_acceptance") is None:
        if vals.get("healthy_acceptance") is None:
            vals["healthy_acceptance"] = RULE_OF_THUMB_HEALTHY
        vals["net_negative_acceptance"] = RULE_OF_THUMB_NET_NEGATIVE
        # The rule of thumb has no break-even of its own: the band between its two lines is "buys little".
        vals["break_even_acceptance"] = RULE_OF_THUMB_NET_NEGATIVE
        notes.append("acceptance lines are the rule of thumb (healthy >= 0.65, turn off below 0.5), not this pair's "
                     "break-even: run `specwise decide` and pass --decision for this deployment's numbers")
    if vals.get("break_even_acceptance") is None:
        vals["break_even_acceptance"] = vals["net_negative_acceptance"]
    if vals.get("net_negative_acceptance") is None:
        vals["net_negative_acceptance"] = vals["break_even_acceptance"]
    if vals.get("healthy_acceptance") is None:
        vals["healthy_acceptance"] = vals["break_even_acceptance"] + HEALTHY_MARGIN
    for key in ("healthy_acceptance", "break_even_acceptance", "net_negative_acceptance", "baseline_acceptance"):
        v = vals.get(key)
        if v is not None and not 0.0 <= v <= 1.0:
            raise UserError(f"{key.replace('_', ' ')} must lie in [0, 1] (acceptance = accepted / drafted), got {v}")
    if not vals["net_negative_acceptance"] <= vals["break_even_acceptance"] <= vals["healthy_acceptance"]:
        raise UserError("acceptance lines must satisfy net-negative <= break-even <= healthy; got "
                        f"{vals['net_negative_acceptance']:.3f} / {vals['break_even_acceptance']:.3f} / "
                        f"{vals['healthy_acceptance']:.3f}")
    for key in ("crossover_batch_size", "crossover_qps", "slo_tpot_p99_s", "slo_ttft_p99_s"):
        v = vals.get(key)
        if v is not None and v <= 0:
            raise UserError(f"{key.replace('_', ' ')} must be > 0, got {v}")
    if vals.get("crossover_batch_size") is None and vals.get("crossover_qps") is None:
        notes.append("no crossover load (decision or --crossover-batch / --crossover-qps): over-the-crossover is "
                     "not checked")
    return Thresholds(source=src, decision_path=str(decision_path) if decision_path else None, notes=notes,
                      **{k: v for k, v in vals.items() if k in Thresholds.model_fields})

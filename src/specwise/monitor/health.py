"""The health state of one endpoint and how long it has held.

Acceptance (vLLM V1 meaning, accepted / drafted over the window) is placed against three lines: at or above
``healthy_acceptance`` speculation clearly pays; below ``net_negative_acceptance`` it makes decoding slower; in
between it is about break-even. Load comes first: acceptance can stay at 0.86-0.91 from batch 1 to 32 while
speculation flips from 23 % faster to 16 % slower (vLLM issue #26504), so when the running requests exceed the
crossover batch size, or the request rate the crossover load, the state is ``over_crossover`` whatever the acceptance
(the acceptance-only state is still reported beside it).
"""

from __future__ import annotations

from specwise.schemas.monitor import EndpointReading, Health, HealthStateName, Thresholds

__all__ = ["HealthTracker", "acceptance_state"]


def acceptance_state(acceptance: float, th: Thresholds) -> HealthStateName:
    if acceptance < th.net_negative_acceptance:
        return "net_negative"
    if acceptance < th.healthy_acceptance:
        return "break_even"
    return "healthy"


class HealthTracker:
    """Remembers the current state and when it began, so the view can say "net-negative for 3 m 20 s"."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.th = thresholds
        self.state: HealthStateName = "warming_up"
        self.since: float | None = None
        self.acc_state: HealthStateName | None = None
        self.reasons: list[str] = []

    def update(self, state: HealthStateName, acc: HealthStateName | None, reasons: list[str], now: float) -> Health:
        if state != self.state or self.since is None:
            self.state, self.since = state, now
        self.acc_state, self.reasons = acc, reasons
        return self.current(now)

    def current(self, now: float) -> Health:
        since = now if self.since is None else self.since
        return Health(state=self.state, acceptance_state=self.acc_state, since=since, held_s=max(0.0, now - since),
                      reasons=list(self.reasons))

    def judge(self, r: EndpointReading, *, spec_present: bool, drafting: bool, now: float) -> Health:
        th = self.th
        if not spec_present:
            return self.update("no_spec", None, ["no speculative-decoding metrics on this server (speculation off, "
                                                 "or --disable-log-stats)"], now)
        if r.acceptance_rate is None or not drafting:
            return self.update("idle", None, [f"nothing drafted in the last {r.window_s:.0f} s"], now)
        acc = acceptance_state(r.acceptance_rate, th)
        label = {"decision": "this pair's", "flags": "the given", "rule_of_thumb": "rule-of-thumb"}[th.source]
        if acc == "net_negative":
            reasons = [f"acceptance {r.acceptance_rate:.3f} < {label} net-negative line {th.net_negative_acceptance:.3f}"]
        elif acc == "break_even":
            reasons = [f"acceptance {r.acceptance_rate:.3f} between {label} net-negative "
                       f"{th.net_negative_acceptance:.3f} and healthy {th.healthy_acceptance:.3f} lines"]
        else:
            reasons = [f"acceptance {r.acceptance_rate:.3f} >= {label} healthy line {th.healthy_acceptance:.3f}"]
        load: list[str] = []
        if th.crossover_batch_size is not None and r.running is not None and r.running > th.crossover_batch_size:
            load.append(f"running requests {r.running:.1f} (window mean) > crossover batch {th.crossover_batch_size:g}")
        if th.crossover_qps is not None and r.requests_per_s is not None and r.requests_per_s > th.crossover_qps:
            load.append(f"request rate {r.requests_per_s:.2f}/s > crossover {th.crossover_qps:g}/s")
        if load:
            return self.update("over_crossover", acc, load + reasons, now)
        return self.update(acc, acc, reasons, now)

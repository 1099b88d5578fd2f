"""Prometheus recording and alerting rules for speculative decoding, with this deployment's thresholds.

The recording rules compute what vLLM's own docstring defines (vllm-speculative-decoding.md §2.3), summed over
data-parallel ``engine`` series and kept per ``job, instance, model_name``: windowed acceptance
``rate(accepted) / rate(draft_tokens)``, mean acceptance length ``1 + rate(accepted) / rate(drafts)``, running
requests averaged over the window, request rate, P50 / P99 TPOT and TTFT from bucket rates, KV-cache usage and the
waiting queue. The alerts compare them with the lines of :class:`specwise.schemas.monitor.Thresholds`. A window
without drafts gives 0/0 = NaN acceptance, which compares false, so an idle server or one whose guard switched
speculation off never raises an acceptance alert.

Each alert carries ``summary`` (with the value), ``meaning`` and ``action`` annotations; the README's "monitor"
section repeats them for people. Validated by the tests with ``promtool check rules`` and ``promtool test rules``.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from specwise.schemas.monitor import Thresholds

__all__ = ["ALERT_NAMES", "RuleOptions", "rules_document", "rules_yaml"]

BY = "job, instance, model_name"
VALUE = '{{ $value | printf "%.3f" }}'
WHO = "{{ $labels.model_name }} on {{ $labels.instance }}"


@dataclass(frozen=True)
class RuleOptions:
    for_minutes: int = 10
    window: str = "5m"
    kv_saturation: float = 0.95
    drop: float = 0.05
    selector: str = ""  # extra label matchers, e.g. job="vllm"


ALERT_NAMES = (
    "SpecDecodeAcceptanceBelowBreakEven", "SpecDecodeAcceptanceNetNegative", "SpecDecodeAcceptanceDropVsBaseline",
    "SpecDecodeOverCrossoverBatch", "SpecDecodeOverCrossoverRate", "SpecDecodeTPOTAboveSLO", "SpecDecodeTTFTAboveSLO",
    "VLLMKVCacheSaturated", "VLLMQueueGrowing",
)


def _rec(name: str, w: str) -> str:
    return f"specwise:{name}:{w}"


def recording_rules(o: RuleOptions) -> list[dict]:
    w, s = o.window, ("{" + o.selector + "}" if o.selector else "")

    def rate(metric: str) -> str:
        return f"sum by ({BY}) (rate({metric}{s}[{w}]))"

    def quantile(q: float, *metrics: str) -> str:
        # the first histogram the server exposes wins (`or`): per-request TPOT (0.11+) before the per-step one
        return " or ".join(f"histogram_quantile({q}, sum by ({BY}, le) (rate({m}_bucket{s}[{w}])))" for m in metrics)

    tpot = ("vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds")
    ttft = ("vllm:time_to_first_token_seconds",)
    return [
        {"record": _rec("spec_decode_acceptance_rate", w),
         "expr": f"{rate('vllm:spec_decode_num_accepted_tokens_total')} / "
                 f"{rate('vllm:spec_decode_num_draft_tokens_total')}"},
        {"record": _rec("spec_decode_mean_acceptance_length", w),
         "expr": f"1 + {rate('vllm:spec_decode_num_accepted_tokens_total')} / "
                 f"{rate('vllm:spec_decode_num_drafts_total')}"},
        {"record": _rec("spec_decode_draft_tokens_per_second", w),
         "expr": rate("vllm:spec_decode_num_draft_tokens_total")},
        {"record": _rec("num_requests_running_avg", w),
         "expr": f"sum by ({BY}) (avg_over_time(vllm:num_requests_running{s}[{w}]))"},
        {"record": _rec("request_rate", w), "expr": rate("vllm:request_success_total")},
        {"record": _rec("tpot_seconds_p50", w), "expr": quantile(0.5, *tpot)},
        {"record": _rec("tpot_seconds_p99", w), "expr": quantile(0.99, *tpot)},
        {"record": _rec("ttft_seconds_p50", w), "expr": quantile(0.5, *ttft)},
        {"record": _rec("ttft_seconds_p99", w), "expr": quantile(0.99, *ttft)},
        {"record": "specwise:kv_cache_usage:max",
         "expr": f"max by ({BY}) (vllm:kv_cache_usage_perc{s} or vllm:gpu_cache_usage_perc{s})"},
        {"record": "specwise:num_requests_waiting:sum", "expr": f"sum by ({BY}) (vllm:num_requests_waiting{s})"},
    ]


def _alert(name: str, expr: str, minutes: int, severity: str, th: Thresholds, summary: str, meaning: str,
           action: str) -> dict:
    return {"alert": name, "expr": expr, "for": f"{minutes}m",
            "labels": {"severity": severity, "component": "speculative-decoding", "thresholds_source": th.source},
            "annotations": {"summary": summary, "meaning": meaning, "action": action}}


def alerting_rules(th: Thresholds, o: RuleOptions) -> list[dict]:
    w, m = o.window, o.for_minutes
    acc = _rec("spec_decode_acceptance_rate", w)
    src = {"decision": "this pair's (specwise decide)", "flags": "the configured",
           "rule_of_thumb": "the rule-of-thumb (not this pair's)"}[th.source]
    out = [
        _alert("SpecDecodeAcceptanceBelowBreakEven", f"{acc} < {th.break_even_acceptance:g}", m, "warning", th,
               f"{WHO}: speculative acceptance {VALUE} below {src} break-even {th.break_even_acceptance:.3f} for {m}m",
               "Below break-even the draft's work costs more than the accepted tokens save: speculation no longer "
               "makes decoding faster.",
               "Check what changed (traffic mix, temperature, model or draft upgrade, quantisation); re-run "
               "`specwise bench` at the current load; if it persists, ship the baseline (no --speculative-config) or "
               "a smaller k."),
        _alert("SpecDecodeAcceptanceNetNegative", f"{acc} < {th.net_negative_acceptance:g}", m, "critical", th,
               f"{WHO}: speculative acceptance {VALUE} below {src} net-negative line "
               f"{th.net_negative_acceptance:.3f} for {m}m",
               "Speculation is making every request slower than the same server without it.",
               "Turn speculation off (restart without --speculative-config) now; investigate the acceptance drop "
               "offline with `specwise estimate` on current prompts."),
    ]
    if th.baseline_acceptance is not None:
        line = th.baseline_acceptance - o.drop
        out.append(_alert(
            "SpecDecodeAcceptanceDropVsBaseline", f"{acc} < {line:g}", m, "warning", th,
            f"{WHO}: acceptance {VALUE} is more than {o.drop * 100:g} points below the recorded baseline "
            f"{th.baseline_acceptance:.3f} for {m}m",
            "Acceptance fell against what this deployment used to see: the typical sign of a target/draft upgrade, a "
            "new quantisation or a tokenizer/template mismatch, even when the value is still above break-even.",
            "Compare model, draft, quantisation and vLLM versions with the baseline's; roll back the change or "
            "re-measure and re-decide (`specwise bench`, `specwise decide`)."))
    spec_on = f"and on ({BY}) {_rec('spec_decode_draft_tokens_per_second', w)} > 0"
    if th.crossover_batch_size is not None:
        out.append(_alert(
            "SpecDecodeOverCrossoverBatch",
            f"{_rec('num_requests_running_avg', w)} > {th.crossover_batch_size:g} {spec_on}", m, "warning", th,
            f"{WHO}: {VALUE} running requests (mean over {w}) above the crossover batch "
            f"{th.crossover_batch_size:g} while speculation is on, for {m}m",
            "Above the crossover batch the GPU is compute-bound and verifying drafts costs more than it saves, "
            "whatever the acceptance.",
            "Ship a batch-size guard (num_speculative_tokens_per_batch_size from `specwise decide`), lower k, or "
            "turn speculation off for this load."))
    if th.crossover_qps is not None:
        out.append(_alert(
            "SpecDecodeOverCrossoverRate", f"{_rec('request_rate', w)} > {th.crossover_qps:g} {spec_on}", m,
            "warning", th,
            f"{WHO}: request rate {VALUE}/s above the crossover {th.crossover_qps:g}/s while speculation is on, "
            f"for {m}m",
            "At this request rate the decision found speculation slower than the baseline.",
            "Ship the guard or the baseline for this load; re-run `specwise bench` at the new load if it is here "
            "to stay."))
    if th.slo_tpot_p99_s is not None:
        out.append(_alert(
            "SpecDecodeTPOTAboveSLO", f"{_rec('tpot_seconds_p99', w)} > {th.slo_tpot_p99_s:g}", m, "warning", th,
            f"{WHO}: P99 TPOT {VALUE} s above the SLO {th.slo_tpot_p99_s:g} s for {m}m",
            "The slowest 1 % of requests decode slower than the SLO (speculation widens the P50-P99 gap when "
            "acceptance varies between requests).",
            "Look at acceptance and running requests on the dashboard: low acceptance -> speculation off; high load "
            "-> guard or scale out."))
    if th.slo_ttft_p99_s is not None:
        out.append(_alert(
            "SpecDecodeTTFTAboveSLO", f"{_rec('ttft_seconds_p99', w)} > {th.slo_ttft_p99_s:g}", m, "warning", th,
            f"{WHO}: P99 TTFT {VALUE} s above the SLO {th.slo_ttft_p99_s:g} s for {m}m",
            "Requests wait too long for their first token: queueing or prefill is the bottleneck.",
            "Check the queue and KV-cache alerts; the draft's KV share and step time lower capacity, so a "
            "saturated server may do better without speculation or with more replicas."))
    out.append(_alert(
        "VLLMKVCacheSaturated", f"specwise:kv_cache_usage:max > {o.kv_saturation:g}", m, "warning", th,
        f"{WHO}: KV-cache usage {VALUE} above {o.kv_saturation:g} for {m}m",
        "The KV cache (shared by target and draft layers) is nearly full: requests queue or get preempted.",
        "Lower max-num-seqs or max-model-len, add replicas, or drop speculation to give the draft's KV back to the "
        "target."))
    out.append(_alert(
        "VLLMQueueGrowing",
        f"sum by ({BY}) (deriv(vllm:num_requests_waiting{'{' + o.selector + '}' if o.selector else ''}[{w}])) > 0 "
        f"and on ({BY}) specwise:num_requests_waiting:sum > 0", m, "warning", th,
        f"{WHO}: waiting queue growing ({VALUE} requests/s) for {m}m",
        "Requests arrive faster than the server finishes them: latency will keep rising.",
        "Scale out or shed load; if speculation is on at this load, check the crossover alert: beyond the "
        "crossover it lowers throughput."))
    return out


def rules_document(th: Thresholds, o: RuleOptions | None = None) -> dict:
    o = o or RuleOptions()
    return {"groups": [
        {"name": "specwise-speculative-decoding-recording", "rules": recording_rules(o)},
        {"name": "specwise-speculative-decoding-alerts", "rules": alerting_rules(th, o)},
    ]}


def rules_yaml(th: Thresholds, o: RuleOptions | None = None) -> str:
    o = o or RuleOptions()
    head = [
        "# Prometheus rules for speculative decoding, written by `specwise monitor rules`.",
        f"# Acceptance lines ({th.source}): healthy >= {th.healthy_acceptance:.3f}, break-even "
        f"{th.break_even_acceptance:.3f}, net-negative < {th.net_negative_acceptance:.3f}"
        + (f"; from {th.decision_path}" if th.decision_path else ""),
    ]
    head += [f"# note: {n}" for n in th.notes]
    if th.baseline_acceptance is None:
        head.append("# no recorded baseline acceptance (--baseline-acceptance or the decision): the drop rule is left out")
    if th.slo_tpot_p99_s is None and th.slo_ttft_p99_s is None:
        head.append("# no SLO (--slo-tpot-p99 / --slo-ttft-p99 or the decision): the SLO rules are left out")
    body = yaml.safe_dump(rules_document(th, o), sort_keys=False, width=1000, allow_unicode=True)
    return "\n".join(head) + "\n" + body

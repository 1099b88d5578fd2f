"""A Grafana dashboard for speculative decoding, built with Grafana's own Python SDK (grafana-foundation-sdk).

Beyond the panels vLLM's spec-decode dashboard has (acceptance, per position, token flow, latency), it plots
acceptance **against the running requests** (the load axis that decides whether speculation pays), observed against
expected acceptance, and the P50/P99 gap over time, with this deployment's break-even, net-negative, healthy and
crossover values drawn as threshold lines. A ``datasource`` variable picks the Prometheus, a ``model_name`` variable
the served model(s). The queries are those of :mod:`specwise.monitor.rules` (vLLM's own formulas, §2.3).
"""

from __future__ import annotations

import json

from specwise.errors import MissingExtraError
from specwise.schemas.monitor import Thresholds

__all__ = ["DASHBOARD_UID", "dashboard_json"]

DASHBOARD_UID = "specwise-spec-decode"
SEL = 'model_name=~"$model_name"'
BY = "model_name"
RI = "$__rate_interval"


def _sdk():
    try:
        from grafana_foundation_sdk.builders import dashboard as d
        from grafana_foundation_sdk.builders import prometheus, timeseries, xychart
        from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import common
        from grafana_foundation_sdk.models import dashboard as dm
        from grafana_foundation_sdk.models import xychart as xm
    except ImportError:
        raise MissingExtraError("monitor", "specwise monitor dashboard") from None
    return d, prometheus, timeseries, xychart, GraphThresholdsStyleConfig, JSONEncoder, common, dm, xm


def _rate(metric: str, extra: str = "") -> str:
    sel = SEL + ("," + extra if extra else "")
    return f"sum by ({BY}) (rate({metric}{{{sel}}}[{RI}]))"


def _quantile(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, sum by ({BY}, le) (rate({metric}_bucket{{{SEL}}}[{RI}])))"


ACCEPTANCE = (f"{_rate('vllm:spec_decode_num_accepted_tokens_total')} / "
              f"{_rate('vllm:spec_decode_num_draft_tokens_total')}")
RUNNING = f"sum by ({BY}) (vllm:num_requests_running{{{SEL}}})"
TPOT = "vllm:request_time_per_output_token_seconds"


def dashboard_json(th: Thresholds) -> str:
    """The dashboard as Grafana import JSON."""
    d, prometheus, timeseries, xychart, ThresholdsStyle, JSONEncoder, common, dm, xm = _sdk()
    ds = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

    def q(expr: str, legend: str, ref: str = "A"):
        return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)

    def lines(*steps: tuple[float | None, str]):
        kept: list[tuple[float | None, str]] = []
        for v, c in steps:  # a line given twice (break-even = net-negative) is drawn once, in the later colour
            if kept and v is not None and kept[-1][0] == v:
                kept[-1] = (v, c)
            else:
                kept.append((v, c))
        return d.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
            [dm.Threshold(value=v, color=c) for v, c in kept])

    def ts(title: str, desc: str, unit: str, *targets, thresholds=None, span: int = 8):
        p = (timeseries.Panel().title(title).description(desc).datasource(ds).unit(unit).span(span).height(8))
        for t in targets:
            p = p.with_target(t)
        if thresholds is not None:
            p = p.thresholds(thresholds).thresholds_style(ThresholdsStyle().mode(common.GraphTresholdsStyleMode.DASHED))
        return p

    src = {"decision": f"decision {th.decision_path}", "flags": "command-line flags",
           "rule_of_thumb": "rule of thumb (0.65 / 0.5), not this pair's break-even"}[th.source]
    acceptance_lines = lines((None, "red"), (th.net_negative_acceptance, "orange"),
                             (th.break_even_acceptance, "yellow"), (th.healthy_acceptance, "green"))
    running_lines = lines((None, "green"), (th.crossover_batch_size, "red")) if th.crossover_batch_size else None
    rate_lines = lines((None, "green"), (th.crossover_qps, "red")) if th.crossover_qps else None
    tpot_lines = lines((None, "green"), (th.slo_tpot_p99_s, "red")) if th.slo_tpot_p99_s else None
    ttft_lines = lines((None, "green"), (th.slo_ttft_p99_s, "red")) if th.slo_ttft_p99_s else None

    model_var = (d.QueryVariable("model_name").label("model").datasource(ds)
                 .query(f"label_values(vllm:num_requests_running, {BY})").multi(True).include_all(True)
                 .all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    expected = th.expected_acceptance if th.expected_acceptance is not None else th.baseline_acceptance
    expected_label = "expected (decision)" if th.expected_acceptance is not None else "recorded baseline"
    observed_vs_expected = [q(ACCEPTANCE, "observed {{model_name}}")]
    if expected is not None:
        observed_vs_expected.append(q(f"vector({expected:g})", expected_label, "B"))

    xy = (xychart.Panel().title("Acceptance vs running requests (load axis)").datasource(ds).span(12).height(9)
          .description("Each point is one scrape interval: x = running requests, y = windowed acceptance. "
                       "Speculation pays at low batch and stops paying past the crossover batch"
                       + (f" ({th.crossover_batch_size:g})" if th.crossover_batch_size else "")
                       + " even at unchanged acceptance.")
          .with_target(q(RUNNING, "running", "A")).with_target(q(ACCEPTANCE, "acceptance", "B"))
          .with_transformation(dm.DataTransformerConfig(id_val="joinByField",
                                                        options={"byField": "Time", "mode": "outer"}))
          .series_mapping(xm.SeriesMapping.AUTO).dims(xychart.XYDimensionConfig().frame(0).x("running"))
          .thresholds(acceptance_lines))

    board = (
        d.Dashboard("Speculative decoding: acceptance against load (specwise)").uid(DASHBOARD_UID)
        .description(f"Generated by `specwise monitor dashboard`; threshold lines from {src}.")
        .tags(["specwise", "vllm", "speculative-decoding"]).refresh("30s").time("now-3h", "now")
        .with_variable(d.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(model_var)
        .with_row(d.Row("Speculation"))
        .with_panel(ts("Acceptance rate (windowed)",
                       "rate(accepted) / rate(drafted tokens), vLLM V1 meaning. Dashed lines: net-negative, "
                       f"break-even, healthy ({src}).", "percentunit",
                       q(ACCEPTANCE, "{{model_name}}"), thresholds=acceptance_lines))
        .with_panel(ts("Mean acceptance length", "1 + rate(accepted) / rate(drafts): tokens per draft step, bonus "
                       "token included.", "short",
                       q(f"1 + {_rate('vllm:spec_decode_num_accepted_tokens_total')} / "
                         f"{_rate('vllm:spec_decode_num_drafts_total')}", "{{model_name}}")))
        .with_panel(ts("Per-position acceptance", "rate(accepted at position i) / rate(drafts).", "percentunit",
                       q(f"sum by ({BY}, position) (rate(vllm:spec_decode_num_accepted_tokens_per_pos_total"
                         f"{{{SEL}}}[{RI}])) / on ({BY}) group_left "
                         f"{_rate('vllm:spec_decode_num_drafts_total')}", "{{model_name}} pos {{position}}")))
        .with_panel(ts("Token flow", "Drafted, accepted and generated tokens per second.", "short",
                       q(_rate("vllm:spec_decode_num_draft_tokens_total"), "drafted {{model_name}}", "A"),
                       q(_rate("vllm:spec_decode_num_accepted_tokens_total"), "accepted {{model_name}}", "B"),
                       q(_rate("vllm:generation_tokens_total"), "generated {{model_name}}", "C"), span=12))
        .with_panel(ts("Observed vs expected acceptance", f"Observed windowed acceptance against the {expected_label}"
                       " the deployment was decided on.", "percentunit", *observed_vs_expected,
                       thresholds=acceptance_lines, span=12))
        .with_row(d.Row("Load"))
        .with_panel(xy)
        .with_panel(ts("Running requests vs crossover batch", "Running requests; the dashed line is the crossover "
                       "batch above which speculation stops paying.", "short",
                       q(RUNNING, "running {{model_name}}", "A"),
                       q(f"sum by ({BY}) (vllm:num_requests_waiting{{{SEL}}})", "waiting {{model_name}}", "B"),
                       thresholds=running_lines, span=12))
        .with_panel(ts("Request rate vs crossover load", "Finished requests per second.", "reqps",
                       q(_rate("vllm:request_success_total"), "{{model_name}}"), thresholds=rate_lines))
        .with_panel(ts("KV-cache usage", "0-1; shared by target and draft KV layers.", "percentunit",
                       q(f"max by ({BY}) (vllm:kv_cache_usage_perc{{{SEL}}} or vllm:gpu_cache_usage_perc{{{SEL}}})",
                         "{{model_name}}")))
        .with_row(d.Row("Latency"))
        .with_panel(ts("TTFT P50 / P95 / P99", "From histogram bucket rates.", "s",
                       *[q(_quantile(p, "vllm:time_to_first_token_seconds"), f"P{int(p * 100)} {{{{model_name}}}}",
                           r) for p, r in ((0.5, "A"), (0.95, "B"), (0.99, "C"))], thresholds=ttft_lines))
        .with_panel(ts("TPOT P50 / P95 / P99", "Per-request decode time / (tokens - 1).", "s",
                       *[q(_quantile(p, TPOT), f"P{int(p * 100)} {{{{model_name}}}}", r)
                         for p, r in ((0.5, "A"), (0.95, "B"), (0.99, "C"))], thresholds=tpot_lines))
        .with_panel(ts("E2E latency P50 / P95 / P99", "From histogram bucket rates.", "s",
                       *[q(_quantile(p, "vllm:e2e_request_latency_seconds"), f"P{int(p * 100)} {{{{model_name}}}}",
                           r) for p, r in ((0.5, "A"), (0.95, "B"), (0.99, "C"))]))
        .with_panel(ts("TPOT P50/P99 gap over time", "P99 - P50 TPOT (A) and P99 / P50 (B): speculation widens the "
                       "gap when acceptance differs between requests.", "s",
                       q(f"{_quantile(0.99, TPOT)} - {_quantile(0.5, TPOT)}", "P99-P50 {{model_name}}", "A"),
                       q(f"{_quantile(0.99, TPOT)} / {_quantile(0.5, TPOT)}", "P99/P50 {{model_name}}", "B"),
                       span=24))
    )
    return json.dumps(board.build(), cls=JSONEncoder, indent=2) + "\n"

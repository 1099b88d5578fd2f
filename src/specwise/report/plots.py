"""The report's charts: matplotlib figures rendered to inline SVG, each with the numbers it shows.

Every chart function takes the typed inputs and returns a :class:`Plot` (its SVG, a caption that says what
each line is and where its numbers come from, and the data series behind it for the JSON output), or None
when the inputs hold nothing to draw. matplotlib is imported here only, and only when a report is built,
so ``specwise --help`` does not pay for it. Text stays SVG text (``svg.fonttype: none``) and mathtext is
off, so a user's label with ``$`` or ``<`` is drawn literally; matplotlib's SVG writer escapes it.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specwise.errors import MissingExtraError
from specwise.metrics.definitions import per_request_acceptance
from specwise.report.inputs import ReportInputs, RunInput, run_config, run_servers

__all__ = ["Plot", "build_plots", "run_k"]

RULE_OF_THUMB_ACCEPTANCE = (0.5, 0.65)  # the seed's lines, shown only as labelled rules of thumb
BREAK_EVEN_STYLE = {"color": "black", "linestyle": "-.", "linewidth": 1.6}  # apart from every data colour
ROLE_COLOURS = {"baseline": "#4c72b0", "speculative": "#dd8452", "baseline_like_for_like": "#55a868"}
SOURCE_STYLE = {"measured": "-", "simulated": "--", "estimated": ":", "assumed": ":"}
MAX_TEMPERATURE_ROWS = 4


@dataclass
class Plot:
    id: str
    title: str
    svg: str
    caption: str
    data: dict[str, Any] = field(default_factory=dict)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("report", "the report's charts") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_RC = {"svg.fonttype": "none", "svg.hashsalt": "specwise", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
       "figure.dpi": 100, "text.parse_math": False}


def _svg(fig) -> str:
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    # inline <svg> in HTML: drop the XML prolog and DOCTYPE, keep the element
    return text[text.index("<svg"):]


def _src(run: RunInput) -> str:
    return run.source


def run_k(run: RunInput) -> int | None:
    """The run's draft length k, from its config (simulate: ``k``; bench: ``k`` or the speculative server)."""
    cfg = run_config(run.result)
    for value in (cfg.get("k"), (cfg.get("bench") or {}).get("k"), (run.meta.get("bench") or {}).get("k")):
        if isinstance(value, int) and value > 0:
            return value
    spec = run_servers(run.result).get("speculative") or {}
    for key in ("num_speculative_tokens", "k"):
        if isinstance(spec.get(key), int):
            return spec[key]
    cfgs = spec.get("speculative_config") or {}
    if isinstance(cfgs, dict) and isinstance(cfgs.get("num_speculative_tokens"), int):
        return cfgs["num_speculative_tokens"]
    return None


def _label(run: RunInput, inputs: ReportInputs) -> str:
    same = [r for r in inputs.runs if _src(r) == _src(run)]
    return _src(run) if len(same) == 1 else f"{_src(run)} #{same.index(run) + 1}"


def _log_x(ax, loads: list[float]) -> None:
    """Loads usually double from level to level: a log axis spreads them evenly (when they span > 4x)."""
    pos = [x for x in loads if x and x > 0]
    if pos and max(pos) / min(pos) > 4:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(__import__("matplotlib").ticker.FuncFormatter(lambda v, _: f"{v:g}"))


def _temp_label(t: float | None) -> str:
    return "workload mix" if t is None else f"T={t:g}"


def _peak(inputs: ReportInputs, load_kind: str) -> float | None:
    wl = inputs.workload
    if wl is not None and wl.load.kind == load_kind:
        return wl.load.peak
    return None


# --- speedup vs load ----------------------------------------------------------------------------------------
def speedup_plot(inputs: ReportInputs) -> Plot | None:
    series = []
    for run in inputs.runs:
        groups: dict[tuple, list] = defaultdict(list)
        for c in run.result.comparisons:
            if c.load is None or c.speedup_e2e_p50.value is None:
                continue
            groups[(c.load_kind, c.temperature, c.baseline_role)].append(c)
        for (kind, temp, base), comps in groups.items():
            comps.sort(key=lambda c: c.load)
            series.append({
                "run": _label(run, inputs), "source": _src(run), "load_kind": kind, "temperature": temp,
                "baseline_role": base, "loads": [c.load for c in comps],
                "speedup": [c.speedup_e2e_p50.value for c in comps],
                "ci_low": [c.speedup_e2e_p50.ci_low for c in comps],
                "ci_high": [c.speedup_e2e_p50.ci_high for c in comps],
                "crossovers": [x.model_dump(mode="json") for x in run.result.crossovers
                               if x.temperature == temp and x.baseline_role == base and x.load == kind],
            })
    if not series:
        return None
    plt = _pyplot()
    kinds = sorted({s["load_kind"] for s in series})
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(kinds), figsize=(7.5 * len(kinds), 3.8), squeeze=False)
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        temps = sorted({s["temperature"] for s in series}, key=lambda t: (t is None, t or 0))
        for ax, kind in zip(axes[0], kinds):
            for i, s in enumerate(s for s in series if s["load_kind"] == kind):
                colour = colours[temps.index(s["temperature"]) % len(colours)]
                style = SOURCE_STYLE.get(s["source"], "-")
                base = "" if s["baseline_role"] == "baseline" else " vs like-for-like baseline"
                label = f"{s['run']}, {_temp_label(s['temperature'])}{base}"
                ax.plot(s["loads"], s["speedup"], style, marker="o", ms=4, color=colour, label=label)
                lo = [np.nan if v is None else v for v in s["ci_low"]]
                hi = [np.nan if v is None else v for v in s["ci_high"]]
                if not all(np.isnan(lo)):
                    ax.fill_between(s["loads"], lo, hi, color=colour, alpha=0.18, linewidth=0)
                for x in s["crossovers"]:
                    if x["position"] == "within" and x["value"] is not None:
                        ax.axvline(x["value"], color=colour, linestyle=style, linewidth=1)
                        ax.annotate(f"crossover {x['value']:.3g} ({s['source']})", (x["value"], 1.0),
                                    textcoords="offset points", xytext=(4, 6 + 11 * i), fontsize=8, color=colour)
            ax.axhline(1.0, color="black", linewidth=1)
            _log_x(ax, [x for s in series if s["load_kind"] == kind for x in s["loads"]])
            peak = _peak(inputs, kind)
            if peak is not None:
                ax.axvline(peak, color="#c44e52", linestyle="-.", linewidth=1.2, label=f"your peak load ({peak:g})")
            ax.set_xlabel("offered load (req/s)" if kind == "qps" else "concurrency (requests in flight)")
            ax.set_ylabel("E2E P50 speedup (baseline / speculative)")
            ax.legend(fontsize=7, loc="best")
        svg = _svg(fig)
    caption = ("Speedup = baseline E2E P50 / speculative E2E P50 at each load (> 1: speculation is faster). "
               "Solid lines are measured (bench; shaded band = 95% confidence interval, bootstrap of repeats "
               "then 2-s send-time blocks), dashed lines simulated (simulate; no interval). Vertical lines mark "
               "the crossover (the load where the speedup falls through 1, linearly interpolated) and the "
               "workload's peak load. A speedup whose interval includes 1.0 is not a win.")
    return Plot("speedup", "Speedup vs load", svg, caption, {"series": series})


# --- latency vs load ----------------------------------------------------------------------------------------
_LAT = (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E"))


def latency_plot(inputs: ReportInputs) -> Plot | None:
    rows: dict[Any, list] = defaultdict(list)  # temperature -> [(run, role, cells)]
    for run in inputs.runs:
        by: dict[tuple, list] = defaultdict(list)
        for c in run.result.cells:
            if c.load is None or c.category is not None:
                continue
            by[(c.load_kind, c.temperature, c.role)].append(c)
        for (kind, temp, role), cells in by.items():
            cells.sort(key=lambda c: c.load)
            rows[temp].append((run, kind, role, cells))
    if not rows:
        return None
    temps = sorted(rows, key=lambda t: (t is None, t or 0))[:MAX_TEMPERATURE_ROWS]
    plt = _pyplot()
    data = []
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(len(temps), 3, figsize=(11, 2.8 * len(temps)), squeeze=False)
        for r, temp in enumerate(temps):
            for col, (key, name) in enumerate(_LAT):
                ax = axes[r][col]
                for run, kind, role, cells in rows[temp]:
                    loads = [c.load for c in cells]
                    p50 = [getattr(c, f"{key}_p50_s") for c in cells]
                    p99 = [getattr(c, f"{key}_p99_s") for c in cells]
                    colour = ROLE_COLOURS.get(role, "#8172b3")
                    tag = f"{role} ({_label(run, inputs)})"
                    marker = "o" if _src(run) == "measured" else "s"
                    ax.plot(loads, [np.nan if v is None else v * 1e3 for v in p50], "-", marker=marker, ms=3,
                            color=colour, label=f"{tag} P50", alpha=1.0 if _src(run) == "measured" else 0.6)
                    ax.plot(loads, [np.nan if v is None else v * 1e3 for v in p99], "--", marker=marker, ms=3,
                            color=colour, label=f"{tag} P99", alpha=1.0 if _src(run) == "measured" else 0.6)
                    if col == 0:
                        data.append({"run": _label(run, inputs), "source": _src(run), "role": role,
                                     "temperature": temp, "load_kind": kind, "loads": loads,
                                     **{f"{k}_{p}_s": [getattr(c, f"{k}_{p}_s") for c in cells]
                                        for k, _ in _LAT for p in ("p50", "p99")}})
                _log_x(ax, [c.load for _, _, _, cells in rows[temp] for c in cells])
                slo = inputs.workload.slo if inputs.workload is not None else None
                if slo is not None and slo.metric == key:
                    for target, pct, style in ((slo.p50_target, "P50", "-"), (slo.p99_target, "P99", "--")):
                        if target is not None:
                            ax.axhline(target * 1e3, color="#c44e52", linestyle=style, linewidth=1,
                                       label=f"SLO {pct} target")
                ax.set_title(f"{name} ({_temp_label(temp)})", fontsize=9)
                ax.set_ylabel("ms" if key != "tpot" else "ms / token")
                if r == len(temps) - 1:
                    ax.set_xlabel("load (req/s or in flight)")
                if r == 0 and col == 2:
                    ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        svg = _svg(fig)
    caption = ("P50 (solid) and P99 (dashed) per arm at each load and temperature; circles measured (bench), "
               "squares simulated. TTFT = send to first generated chunk; TPOT = (E2E - TTFT) / (output tokens - 1); "
               "E2E = send to last chunk (simulated: arrival to last token). Red lines: the workload's SLO "
               "targets on the metric it names.")
    return Plot("latency", "Latency vs load per arm (P50 / P99)", svg, caption, {"series": data})


# --- acceptance vs temperature ------------------------------------------------------------------------------
def _default_k(inputs: ReportInputs) -> int:
    d = inputs.decision
    if d is not None and d.monitor.k:
        return d.monitor.k
    if inputs.workload is not None:
        return inputs.workload.deployment.k
    for run in inputs.runs:
        if run_k(run):
            return run_k(run)  # type: ignore[return-value]
    return 4


def _break_even(inputs: ReportInputs) -> float | None:
    return inputs.decision.monitor.break_even_acceptance if inputs.decision is not None else None


def acceptance_plot(inputs: ReportInputs) -> Plot | None:
    k = _default_k(inputs)
    series = []
    for path, prof in inputs.profiles:
        src = str(getattr(prof.source, "value", prof.source))
        by_cat: dict[str, list] = defaultdict(list)
        for c in prof.classes:
            by_cat[c.category].append(c)
        for cat, classes in by_cat.items():
            classes.sort(key=lambda c: c.temperature)
            series.append({"label": f"{src} profile ({prof.method}{'' if cat == 'all' else ', ' + cat}), k={k}",
                           "source": src, "temperatures": [c.temperature for c in classes],
                           "acceptance": [c.acceptance_rate(k) for c in classes], "path": path})
    for path, est in inputs.estimates:
        pts = sorted(est.temperatures, key=lambda t: t.temperature)
        series.append({"label": f"estimated ({est.method}), k={pts[0].acceptance_rate_k if pts else '?'}",
                       "source": "estimated", "temperatures": [t.temperature for t in pts],
                       "acceptance": [t.acceptance_rate for t in pts], "path": path})
    # runs pooled per source: simulate runs one temperature per run, the chart wants one line per source
    by_source: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    how: dict[str, set[str]] = defaultdict(set)
    paths: dict[str, list[str]] = defaultdict(list)
    for run in inputs.runs:
        for c in run.result.cells:
            if c.role != "speculative" or c.temperature is None or c.category is not None:
                continue
            value = c.acceptance_rate_metrics if c.acceptance_rate_metrics is not None \
                else c.acceptance_rate_per_request_p50
            if value is not None:
                by_source[_src(run)][c.temperature].append(value)
                how[_src(run)].add("/metrics" if c.acceptance_rate_metrics is not None else "per-request P50")
                if run.path not in paths[_src(run)]:
                    paths[_src(run)].append(run.path)
    for src, by_t in by_source.items():
        temps = sorted(by_t)
        n = len(paths[src])
        series.append({"label": f"{src}{f' ({n} runs)' if n > 1 else ''} ({', '.join(sorted(how[src]))}; "
                                "range over loads)",
                       "source": src, "temperatures": temps,
                       "acceptance": [float(np.mean(by_t[t])) for t in temps],
                       "low": [min(by_t[t]) for t in temps], "high": [max(by_t[t]) for t in temps],
                       "paths": paths[src]})
    if not series:
        return None
    plt = _pyplot()
    be = _break_even(inputs)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        for s in series:
            style = SOURCE_STYLE.get(s["source"], "-")
            line = ax.plot(s["temperatures"], [np.nan if v is None else v for v in s["acceptance"]], style,
                           marker="o", ms=4, label=s["label"])[0]
            if "low" in s:
                ax.fill_between(s["temperatures"], s["low"], s["high"], color=line.get_color(), alpha=0.15,
                                linewidth=0)
        if be is not None:
            ax.axhline(be, **BREAK_EVEN_STYLE, label=f"break-even for this pair ({be:.2f}, decide)")
        for v in RULE_OF_THUMB_ACCEPTANCE:
            ax.axhline(v, color="grey", linewidth=0.8, linestyle=":", label=f"rule of thumb {v:g} (seed)")
        if inputs.workload is not None:
            for c in inputs.workload.categories:
                ax.axvline(c.temperature, color="#937860", alpha=0.35, linewidth=3)
        ax.set_ylim(0, 1)
        ax.set_xlabel("temperature")
        ax.set_ylabel("acceptance rate (accepted / drafted)")
        ax.legend(fontsize=7, loc="best")
        svg = _svg(fig)
    caption = ("Acceptance rate in vLLM's definition (accepted draft tokens / drafted tokens = sum of per-position "
               "acceptance / k). Dotted: estimated or assumed profiles; solid: measured (server /metrics delta "
               "per cell, band = range over loads); dashed: simulated. Black dash-dot: the break-even acceptance decide "
               "computed for this pair and load; grey: the seed's 0.5 / 0.65 rules of thumb (labelled, not "
               "thresholds). Brown bands: the workload's category temperatures.")
    return Plot("acceptance", "Acceptance vs temperature", svg, caption, {"series": series, "break_even": be, "k": k})


# --- per-request acceptance histogram -----------------------------------------------------------------------
def _per_request(run: RunInput) -> dict[float, list[float]]:
    k = run_k(run)
    out: dict[float, list[float]] = defaultdict(list)
    for rec in run.records:
        if rec.role != "speculative" or not rec.ok:
            continue
        rate, _, _ = per_request_acceptance(rec, k)
        if rate is not None:
            out[rec.temperature].append(rate)
    return out


def histogram_plot(inputs: ReportInputs) -> Plot | None:
    be = _break_even(inputs)
    by_temp: dict[float, list[float]] = defaultdict(list)
    origin = []
    for run in inputs.runs:
        per = _per_request(run)
        if per:
            origin.append(f"{_label(run, inputs)}: {sum(map(len, per.values()))} requests (records.jsonl)")
            for t, v in per.items():
                by_temp[t].extend(v)
    breakdown = []
    if not by_temp:
        for run in inputs.runs:
            for b in run.result.acceptance_breakdown:
                if b.category is None and b.acceptance_rate_p50 is not None:
                    breakdown.append({"run": _label(run, inputs), "temperature": b.temperature,
                                      "requests": b.requests, "p10": b.acceptance_rate_p10,
                                      "p50": b.acceptance_rate_p50, "p90": b.acceptance_rate_p90})
    if not by_temp and not breakdown:
        return None
    plt = _pyplot()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        if by_temp:
            temps = sorted(by_temp)
            bins = np.linspace(0, 1, 21)
            for t in temps:
                v = np.asarray(by_temp[t])
                ax.hist(v, bins=bins, alpha=0.55, label=f"T={t:g}: {v.size} requests, P10 {np.percentile(v, 10):.2f}, "
                        f"P50 {np.percentile(v, 50):.2f}")
            ax.set_ylabel("requests")
            data = {"temperatures": {f"{t:g}": by_temp[t] for t in temps}, "origin": origin}
            how = "one bar per 0.05 of per-request acceptance, from the speculative arm's request records (" \
                  + "; ".join(origin) + ")"
        else:
            for i, b in enumerate(breakdown):
                ax.errorbar([b["p50"]], [i], xerr=[[b["p50"] - (b["p10"] or b["p50"])],
                                                   [(b["p90"] or b["p50"]) - b["p50"]]],
                            fmt="o", capsize=4, label=f"{b['run']} {_temp_label(b['temperature'])} "
                            f"({b['requests']} requests)")
            ax.set_yticks(range(len(breakdown)), [f"{_temp_label(b['temperature'])}" for b in breakdown])
            data = {"breakdown": breakdown}
            how = "P10-P50-P90 of per-request acceptance per temperature (the run's acceptance_breakdown; no " \
                  "request records were given)"
        if be is not None:
            ax.axvline(be, **BREAK_EVEN_STYLE, label=f"break-even ({be:.2f})")
        ax.set_xlim(0, 1)
        ax.set_xlabel("per-request acceptance rate (accepted / drafted)")
        ax.legend(fontsize=7, loc="best")
        svg = _svg(fig)
    caption = (f"Per-request acceptance by temperature bucket: {how}. Requests left of the black dash-dot break-even line "
               "are slower with speculation than without; an aggregate above it can hide a large tail below it.")
    return Plot("histogram", "Per-request acceptance by temperature", svg, caption, {**data, "break_even": be})


# --- memory split -------------------------------------------------------------------------------------------
_MEM_PARTS = (("target_weights_gib_per_gpu", "target weights", "#4c72b0"),
              ("draft_weights_gib_per_gpu", "draft weights", "#dd8452"),
              ("activation_gib", "activation peak", "#8172b3"),
              ("overhead_gib", "non-torch", "#937860"),
              ("cudagraph_gib", "CUDA graphs", "#da8bc3"),
              ("kv_cache_gib", "KV cache", "#55a868"))


def _plan_label(plan) -> str:
    s = plan.memory.settings
    return f"{s.gpus}x {s.gpu}, TP {s.tp}, target {s.target_quant}"


def memory_plot(inputs: ReportInputs) -> Plot | None:
    if not inputs.plans:
        return None
    plt = _pyplot()
    bars, labels, data = [], [], []
    for _, plan in inputs.plans:
        for arm, budget in (("baseline", plan.memory.baseline), ("speculative", plan.memory.speculative)):
            if budget is None:
                continue
            bars.append(budget)
            labels.append(f"{_plan_label(plan)}\n{arm}{'' if budget.fits else ' (does not fit)'}")
            data.append({"plan": _plan_label(plan), "arm": arm, "fits": budget.fits,
                         "requested_gib": budget.requested_gib, "kv_cache_tokens": budget.kv_cache_tokens,
                         **{key: getattr(budget, key) for key, _, _ in _MEM_PARTS}})
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(bars) + 1.2))
        y = np.arange(len(bars))
        left = np.zeros(len(bars))
        for key, name, colour in _MEM_PARTS:
            widths = np.array([max(0.0, getattr(b, key)) for b in bars])
            ax.barh(y, widths, left=left, color=colour, label=name, height=0.6)
            left += widths
        for i, b in enumerate(bars):
            ax.plot([b.requested_gib, b.requested_gib], [i - 0.38, i + 0.38], color="black", linewidth=1.5)
            note = f"KV {b.kv_cache_gib:.1f} GiB = {b.kv_cache_tokens:,} tokens" if b.fits else \
                f"KV budget {b.kv_cache_gib:.1f} GiB: does not fit"
            ax.annotate(note, (left[i], i), textcoords="offset points", xytext=(4, -3), fontsize=7)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("GiB per GPU (black tick: the memory vLLM may use = total x gpu_memory_utilization)")
        ax.set_xlim(0, max(max(left), max(b.requested_gib for b in bars)) * 1.45)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22 * 4 / max(4, len(bars))), ncol=6,
                  frameon=False)
        svg = _svg(fig)
    caption = ("Per-GPU memory of each plan, baseline vs speculative (estimated by specwise plan with vLLM V1's "
               "accounting): weights, activation peak, non-torch memory and CUDA graphs come first and the KV "
               "cache gets what is left, so the draft's weights and KV come out of the KV cache. A negative KV "
               "budget means the deployment does not fit.")
    return Plot("memory", "Memory split, baseline vs speculative (plan)", svg, caption, {"bars": data})


# --- monitor recordings -------------------------------------------------------------------------------------
def _readings(rows: list[dict[str, Any]]) -> list[Any]:
    """The rows of a `specwise monitor --record` file that are EndpointReadings with an acceptance value."""
    from pydantic import ValidationError

    from specwise.schemas.monitor import EndpointReading

    out = []
    for row in rows:
        try:
            r = EndpointReading.model_validate(row)
        except ValidationError:
            continue
        if r.ok and r.acceptance_rate is not None:
            out.append(r)
    return out


def monitor_plot(inputs: ReportInputs) -> Plot | None:
    series = []
    for path, rows in inputs.monitor:
        by_url: dict[str, list] = defaultdict(list)
        for r in _readings(rows):
            by_url[r.url].append(r)
        for url, readings in by_url.items():
            readings.sort(key=lambda r: r.t)
            t0 = readings[0].t
            series.append({"path": path, "url": url, "t_s": [r.t - t0 for r in readings],
                           "acceptance_rate": [r.acceptance_rate for r in readings],
                           "running": [r.running for r in readings],
                           "state": [r.health.state for r in readings]})
    if not series:
        return None
    plt = _pyplot()
    be = _break_even(inputs)
    cross = inputs.decision.monitor.crossover_batch_size if inputs.decision is not None else None
    with plt.rc_context(_RC):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
        for s in series:
            line = ax.plot(s["t_s"], s["acceptance_rate"], "-", label=f"{s['url']} ({s['path']})")[0]
            pts = [(x, a) for x, a in zip(s["running"], s["acceptance_rate"]) if x is not None]
            if pts:
                ax2.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, color=line.get_color(), alpha=0.6)
        for a in (ax, ax2):
            if be is not None:
                a.axhline(be, **BREAK_EVEN_STYLE, label=f"break-even ({be:.2f})")
            a.set_ylabel("acceptance (accepted / drafted)")
        if cross is not None:
            ax2.axvline(cross, color="#c44e52", linestyle="--", label=f"crossover batch ({cross:.3g}, decide)")
        ax.set_xlabel("seconds since the recording started")
        ax2.set_xlabel("running requests (mean over the window)")
        ax.legend(fontsize=7)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        svg = _svg(fig)
    return Plot("monitor", "Production acceptance over time and against load (monitor recordings)", svg,
                "Acceptance per monitoring window (server /metrics counter deltas, measured on the production "
                "server, `specwise monitor --record`), over time and against the running batch, with this pair's "
                "break-even and the crossover batch decide found: above the crossover speculation stops paying "
                "whatever the acceptance.", {"series": series, "break_even": be, "crossover_batch_size": cross})


def build_plots(inputs: ReportInputs) -> list[Plot]:
    """Every chart the inputs support, in the report's order."""
    makers = (speedup_plot, latency_plot, acceptance_plot, histogram_plot, memory_plot, monitor_plot)
    return [p for p in (m(inputs) for m in makers) if p is not None]

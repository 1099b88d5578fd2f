"""Rounds 5 and 6 of issue 12: the draft_model server's step time joined, per time window, with what the host and
the GPU did in that window.

Inputs (``benchmarks/results/gpu_h200_vllm0.26/round5`` and ``round6``): bench's request records (chunk arrival
times give the engine's step: one chunk per speculative step), ``threads.jsonl.gz`` from
``benchmarks/gpu/thread_sampler.py`` (per thread: CPU, run time, run-queue wait; per CPU: steal), nvidia-smi every
100 ms (utilisation, SM clock, power) and, in round 6, ``host_speed.jsonl.gz`` from
``benchmarks/gpu/host_speed_probe.py`` (a Python loop timed ten times a second on the last CPU).

Part 1 (round 5): per run and load, the speculative step's fastest and slowest thirds of 0.5-s windows, and in
each the engine thread's CPU share and run-queue wait, steal over all CPUs and the GPU's utilisation and power.
Part 2 (round 6): per load, the correlation between the probe's loop time and the step, per 1-s window; and the
probe's own slow seconds against what else ran on its CPU.

Run from the repository root: ``python benchmarks/gpu/host_join.py``; writes ``host_join.json`` beside the results.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks/results/gpu_h200_vllm0.26"


def _jsonl(path: Path):
    with gzip.open(path, "rt") as fh:
        for line in fh:
            yield json.loads(line)


def step_windows(run_dir: Path, role: str, per_s: float) -> dict[tuple[float, int], list[float]]:
    """(load, window) -> inter-chunk gaps in ms of ``role``'s requests, windows of 1/per_s seconds (wall clock)."""
    cells = {}
    with open(run_dir / "cells.jsonl") as fh:
        for line in fh:
            c = json.loads(line)
            cells[c["cell_id"]] = c
    out: dict[tuple[float, int], list[float]] = defaultdict(list)
    for row in _jsonl(run_dir / "records.jsonl.gz"):
        rec, cell = row["record"], cells[row["cell"]]
        if cell["role"] != role or rec.get("e2e_s") is None or rec.get("sent_s") is None:
            continue
        start = cell["started_at"] + rec["sent_s"]
        offsets = rec["chunk_offsets_s"]
        for a, b in zip(offsets, offsets[1:]):
            if b > a:
                out[(cell["qps"], int((start + b) * per_s))].append(1e3 * (b - a))
    return out


def gpu_windows(path: Path, per_s: float) -> dict[int, tuple[float, float]]:
    """window -> (mean GPU utilisation %, mean power W) from nvidia-smi's CSV."""
    acc: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with gzip.open(path, "rt") as fh:
        for line in fh:
            parts = [p.strip() for p in line.split(",")]
            try:
                t = dt.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
                acc[int(t.timestamp() * per_s)].append((float(parts[1].split()[0]), float(parts[4].split()[0])))
            except (ValueError, IndexError):
                continue
    return {w: (float(np.mean([v[0] for v in vs])), float(np.mean([v[1] for v in vs]))) for w, vs in acc.items()}


def part1() -> list[dict]:
    root = RESULTS / "round5"
    threads = list(_jsonl(root / "threads.jsonl.gz"))
    by_window = {int(s["t"] * 2): s for s in threads}  # a sample at t covers (t - 0.5, t]
    gpu = gpu_windows(root / "gpu_util.csv.gz", 2.0)
    rows = []
    for run in ("U1", "P1", "U2"):
        steps = step_windows(root / run, "speculative", 2.0)
        eng = _spec_engine(threads, steps)
        per_load: dict[float, list[dict]] = defaultdict(list)
        for (qps, w), gaps in steps.items():
            sample = by_window.get(w + 1)
            if sample is None or len(gaps) < 5:
                continue
            main = next((t for t in sample["threads"] if t["tid"] == eng), None)
            if main is None:
                continue
            util, power = gpu.get(w, (float("nan"), float("nan")))
            per_load[qps].append({"step_ms": float(np.median(gaps)), "engine_cpu_share": main["run_ns"] / 5e8,
                                  "engine_wait_ms": main["wait_ns"] / 1e6,
                                  "steal_ticks": sum(c["steal"] for c in sample["cpus"].values()),
                                  "gpu_util_pct": util, "gpu_power_w": power})
        for qps, ws in sorted(per_load.items()):
            step = np.asarray([x["step_ms"] for x in ws])
            lo, hi = np.percentile(step, [33.3, 66.7])
            row = {"run": run, "qps": qps, "windows": len(ws)}
            for name, sel in (("fast", step <= lo), ("slow", step >= hi)):
                chosen = [x for x, s in zip(ws, sel) if s]
                row[name] = {k: round(float(np.nanmean([x[k] for x in chosen])), 3) for k in chosen[0]}
            rows.append(row)
    return rows


def _spec_engine(threads: list[dict], steps: dict) -> int:
    """Main thread id of the speculative server's engine: of the two EngineCore main threads, the one busy while
    speculative chunks arrive."""
    windows = {w for (_, w) in steps}
    ran: dict[int, int] = defaultdict(int)
    for s in threads:
        if int(s["t"] * 2) - 1 in windows:
            for t in s["threads"]:
                if t["proc"].startswith("VLLM::EngineCor") and t["tid"] == t["pid"]:
                    ran[t["tid"]] += t["run_ns"]
    return max(ran, key=ran.get)


def part2() -> dict:
    root = RESULTS / "round6"
    probe: dict[int, list[float]] = defaultdict(list)
    for row in _jsonl(root / "host_speed.jsonl.gz"):
        probe[int(row["t"])].append(row["ns"])
    out = {"probe_ns_per_5s": [], "per_load": [], "probe_slow_vs_fast": {}}
    t0 = min(probe)
    bins: dict[int, list[float]] = defaultdict(list)
    for s, v in probe.items():
        bins[(s - t0) // 5].extend(v)
    out["probe_ns_per_5s"] = [round(float(np.median(v)), 1) for _, v in sorted(bins.items())]
    for role in ("speculative", "baseline"):
        steps = step_windows(root / "S", role, 1.0)
        per_load: dict[float, list[tuple[float, float]]] = defaultdict(list)
        for (qps, w), gaps in steps.items():
            if w in probe and len(gaps) >= 5:
                per_load[qps].append((float(np.median(probe[w])), float(np.median(gaps))))
        for qps, pairs in sorted(per_load.items()):
            x, y = np.asarray(pairs).T
            fast = x < np.median(x)
            out["per_load"].append({"role": role, "qps": qps, "windows": len(pairs),
                                    "corr_probe_ns_step": round(float(np.corrcoef(x, y)[0, 1]), 3),
                                    "step_ms_probe_fast": round(float(np.median(y[fast])), 2),
                                    "step_ms_probe_slow": round(float(np.median(y[~fast])), 2),
                                    "probe_ns_p10": round(float(np.percentile(x, 10)), 1),
                                    "probe_ns_p90": round(float(np.percentile(x, 90)), 1)})
    # the probe's own CPU: was it slow because something else ran there?
    half: dict[int, list[float]] = defaultdict(list)
    for row in _jsonl(root / "host_speed.jsonl.gz"):
        half[int(row["t"] * 2)].append(row["ns"])
    cpu = None
    rows = []
    for s in _jsonl(root / "threads.jsonl.gz"):
        ns = half.get(int(s["t"] * 2) - 1)
        if not ns:
            continue
        if cpu is None:
            cpu = max(int(k[3:]) for k in s["cpus"])  # the probe is pinned to the last CPU
        mine = [t for t in s["threads"] if t["cpu"] == cpu]
        probe_threads = [t for t in mine if t["proc"].startswith("python")]
        rows.append((float(np.median(ns)),
                     sum(t["run_ns"] for t in mine if t not in probe_threads) / 1e6,
                     sum(t["wait_ns"] for t in probe_threads) / 1e6,
                     s["cpus"][f"cpu{cpu}"]["steal"]))
    a = np.asarray(rows)
    slow, fast = a[:, 0] >= np.percentile(a[:, 0], 75), a[:, 0] <= np.percentile(a[:, 0], 25)
    for name, i in (("probe_ns", 0), ("others_on_its_cpu_ms", 1), ("probe_runqueue_wait_ms", 2),
                    ("steal_ticks", 3)):
        out["probe_slow_vs_fast"][name] = {"fast_quarter": round(float(a[fast, i].mean()), 3),
                                           "slow_quarter": round(float(a[slow, i].mean()), 3)}
    out["probe_slow_vs_fast"]["half_seconds"] = len(a)
    return out


def main() -> None:
    rows = part1()
    print("round 5: speculative step, fastest vs slowest third of 0.5-s windows")
    for r in rows:
        f, s = r["fast"], r["slow"]
        print(f"  {r['run']} {r['qps']:4g} req/s  step {f['step_ms']:5.1f} / {s['step_ms']:5.1f} ms  engine CPU "
              f"{f['engine_cpu_share']:.2f} / {s['engine_cpu_share']:.2f}  run-queue wait {f['engine_wait_ms']:.2f} / "
              f"{s['engine_wait_ms']:.2f} ms  steal {f['steal_ticks']:.1f} / {s['steal_ticks']:.1f}  GPU "
              f"{f['gpu_util_pct']:.0f} / {s['gpu_util_pct']:.0f} %  {f['gpu_power_w']:.0f} / {s['gpu_power_w']:.0f} W")
    p2 = part2()
    print("\nround 6: Python loop on the last CPU, ns per iteration, medians of 5 s:", p2["probe_ns_per_5s"])
    for r in p2["per_load"]:
        print(f"  {r['role']:11s} {r['qps']:4g} req/s  corr(probe, step) {r['corr_probe_ns_step']:+.2f}  step "
              f"{r['step_ms_probe_fast']} ms (probe fast) vs {r['step_ms_probe_slow']} ms (probe slow)")
    print("  probe's slow vs fast quarter of half-seconds:", json.dumps(p2["probe_slow_vs_fast"]))
    (RESULTS / "host_join.json").write_text(json.dumps({"round5": rows, "round6": p2}, indent=1) + "\n")
    print(f"written: {RESULTS / 'host_join.json'}")


if __name__ == "__main__":
    main()

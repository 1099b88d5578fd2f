"""How steady the engine's step was in every stored H200 bench cell, and whether a speedup's interval from one
repeat covers the next repeat: the request bootstrap against the two-stage block bootstrap bench now uses.

Why: rounds 3-6 of issue 12 saw the draft_model server hold one step speed for seconds and then another at one
load. Requests sent in those seconds share a speed, so resampling requests as if independent gives intervals too
narrow for the next repeat. This script recomputes, from the stored request records and with specwise's own code
(``summarize_cell``, ``compare_arms``):

* per cell, ``step_window_spread`` (p90/p10 of the per-second median chunk gap) of baseline and speculative;
* for runs with two repeats, per load, the E2E P50 speedup of each repeat and whether the 95 % interval computed
  from one repeat alone holds the other's speedup, for the request bootstrap and for ``compare_arms``.

Run from the repository root: ``python benchmarks/gpu/steadiness.py`` (about a minute); it prints both tables
and writes ``benchmarks/results/gpu_h200_vllm0.26/steadiness.json``.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from specwise.comparisons import ArmRun, compare_arms  # noqa: E402
from specwise.metrics.definitions import summarize_cell  # noqa: E402
from specwise.schemas import RequestRecord, Source  # noqa: E402

RESULTS = ROOT / "benchmarks/results/gpu_h200_vllm0.26"
RUNS = {  # run directory -> what ran (the speculative arm against the baseline arm)
    "run/bench_A_base_dhigh": "round 1: HIGH vs default",
    "run/bench_B_lfl_dlow": "round 1: LOW vs like-for-like",
    "round2/A1_base_dhigh": "round 2: HIGH vs default",
    "round3/A_base_dhigh": "round 3: HIGH vs default (2 idle servers beside)",
    "round3/B_lfl_dlow": "round 3: LOW vs like-for-like",
    "round4/A_solo_full": "round 4: HIGH vs default (slow instance)",
    "round5/U1": "round 5: HIGH vs default, unpinned",
    "round5/P1": "round 5: HIGH vs default, pinned",
    "round5/U2": "round 5: HIGH vs default, unpinned again",
    "round6/S": "round 6: HIGH vs default, 30-s cells",
}


def load(run: str) -> dict[str, list[RequestRecord]]:
    cells: dict[str, list[RequestRecord]] = defaultdict(list)
    with gzip.open(RESULTS / run / "records.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            cells[row["cell"]].append(RequestRecord.model_validate(row["record"]))
    return cells


def request_bootstrap(base: list[float], spec: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The interval bench computed before: every request resampled independently."""
    rng = np.random.default_rng(seed)
    b, s = np.asarray(base), np.asarray(spec)
    ratios = (np.median(b[rng.integers(0, b.size, (n, b.size))], axis=1)
              / np.median(s[rng.integers(0, s.size, (n, s.size))], axis=1))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def _load_of(cell: str) -> float:
    return float(cell.split("/")[2][1:])


def main() -> None:
    spreads, coverage = [], []
    for run, label in RUNS.items():
        if not (RESULTS / run / "records.jsonl.gz").exists():
            continue
        cells = load(run)
        for cell in sorted(cells, key=lambda c: (_load_of(c), c)):
            role, repeat, _, _ = cell.split("/")
            s = summarize_cell(cells[cell], role=role, source=Source.measured, qps=_load_of(cell))  # type: ignore
            spreads.append({"run": run, "label": label, "role": role, "repeat": repeat, "qps": _load_of(cell),
                            "spread": s.step_window_spread, "step_p10_ms": 1e3 * (s.step_window_p10_s or 0),
                            "step_p90_ms": 1e3 * (s.step_window_p90_s or 0), "windows": s.step_windows})
        by_load = defaultdict(dict)
        for cell, recs in cells.items():
            role, repeat, _, _ = cell.split("/")
            by_load[_load_of(cell)][(role, repeat)] = recs
        for qps, arms in sorted(by_load.items()):
            reps = sorted({r for (_, r) in arms if ("baseline", r) in arms and ("speculative", r) in arms})
            if len(reps) < 2:
                continue
            ok = {key: [r for r in recs if r.ok and r.e2e_s is not None] for key, recs in arms.items()}
            point = {r: float(np.median([x.e2e_s for x in ok[("baseline", r)]])
                              / np.median([x.e2e_s for x in ok[("speculative", r)]])) for r in reps}
            for own, other in ((reps[0], reps[1]), (reps[1], reps[0])):
                plain = request_bootstrap([x.e2e_s for x in ok[("baseline", own)]],
                                          [x.e2e_s for x in ok[("speculative", own)]])
                summ = summarize_cell(ok[("baseline", own)], role="baseline", source=Source.measured, qps=qps)
                comp = compare_arms([ArmRun(summ, ok[("baseline", own)])],
                                    [ArmRun(summ.model_copy(update={"role": "speculative"}),
                                            ok[("speculative", own)])])
                blocks = (comp.speedup_e2e_p50.ci_low, comp.speedup_e2e_p50.ci_high)
                coverage.append({"run": run, "qps": qps, "from": own, "other": other, "own_speedup": point[own],
                                 "other_speedup": point[other], "request_ci": plain, "block_ci": blocks,
                                 "request_covers": plain[0] <= point[other] <= plain[1],
                                 "block_covers": blocks[0] <= point[other] <= blocks[1]})

    print("step_window_spread (p90/p10 of the per-second median chunk gap), baseline / speculative, per cell")
    table = defaultdict(dict)
    for row in spreads:
        table[(row["run"], row["repeat"], row["qps"])][row["role"]] = row["spread"]
    for (run, rep, qps), roles in table.items():
        cells_ = "  ".join(f"{role[:4]} {v:.2f}" if v else f"{role[:4]} -" for role, v in sorted(roles.items()))
        print(f"  {run:24s} {rep} {qps:5g} req/s  {cells_}")
    print("\nE2E P50 speedup: does one repeat's 95 % interval hold the other repeat's speedup?")
    for row in coverage:
        print(f"  {row['run']:24s} {row['qps']:5g} req/s  {row['from']} {row['own_speedup']:.3f} -> "
              f"{row['other']} {row['other_speedup']:.3f}  requests [{row['request_ci'][0]:.3f}, "
              f"{row['request_ci'][1]:.3f}] {'yes' if row['request_covers'] else 'no '}  blocks "
              f"[{row['block_ci'][0]:.3f}, {row['block_ci'][1]:.3f}] {'yes' if row['block_covers'] else 'no'}")
    n = len(coverage)
    req = sum(r["request_covers"] for r in coverage)
    blk = sum(r["block_covers"] for r in coverage)
    print(f"\ncovered: request bootstrap {req}/{n}, two-stage block bootstrap {blk}/{n}")
    out = RESULTS / "steadiness.json"
    out.write_text(json.dumps({"spreads": spreads, "coverage": coverage,
                               "covered": {"request_bootstrap": req, "block_bootstrap": blk, "pairs": n}},
                              indent=1) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

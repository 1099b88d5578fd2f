"""Speed of bench's speedup intervals: the paired two-stage block bootstrap
(``specwise.stats.paired_block_ratio_ci``) beside the request bootstrap it replaced, on the same data, for cells of 300 to 36,000 requests per arm.

Target: a comparison (five metrics) of a 3-repeat cell of 4,000 requests per repeat and arm in under 10 s on the
2-core CI machine, so that a bench run of ten such loads summarises in under two minutes. The bootstrap runs once,
when the run ends (``BenchRunner.result``). Run: ``python benchmarks/interval_speed.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "gpu"))
from steadiness import request_bootstrap  # noqa: E402

from specwise.stats import paired_block_ratio_ci, paired_time_blocks  # noqa: E402

TARGET_S = 10.0
METRICS = 5  # speedups per comparison (TPOT P50/P99, E2E P50/P99, TTFT P50)


def arm(rng: np.random.Generator, median: float, repeats: int, n: int) -> list[list[tuple[float, float]]]:
    return [list(zip(np.sort(rng.uniform(0, n / 50.0, n)), rng.lognormal(np.log(median), 0.3, n)))
            for _ in range(repeats)]


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'repeats x requests per arm':>28}  {'request bootstrap':>18}  {'block bootstrap':>16}  ratio")
    for repeats, n in [(1, 300), (1, 3000), (3, 1000), (3, 4000), (3, 12000)]:
        base, spec = arm(rng, 2.0, repeats, n), arm(rng, 1.0, repeats, n)
        t0 = time.perf_counter()
        request_bootstrap([v for r in base for _, v in r], [v for r in spec for _, v in r])
        plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        paired_block_ratio_ci(*paired_time_blocks(base, spec))
        block = time.perf_counter() - t0
        print(f"{f'{repeats} x {n:,}':>28}  {plain:>16.3f} s  {block:>14.3f} s  {block / plain:5.1f}x")
        if (repeats, n) == (3, 4000):
            per_comparison = METRICS * block
            verdict = "meets" if per_comparison < TARGET_S else "MISSES"
            print(f"{'':>28}  one comparison of {METRICS} metrics: {per_comparison:.1f} s ({verdict} the "
                  f"{TARGET_S:g}-s target)")


if __name__ == "__main__":
    main()

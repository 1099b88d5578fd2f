"""Continuous host-speed probe for the GPU rounds: the time of one pure-Python loop iteration, ten times a second.

Why: round 5 found the draft_model server's host-bound step switching between two speeds while its engine thread
ran the whole time (no run-queue wait, no steal, the GPU waiting), and the one-shot host probe of one machine read
39-75 ns per loop iteration at different minutes. If the host itself speeds up and slows down (a hypervisor
neighbour, host frequency), a probe on an otherwise idle CPU sees it at the same moments as the engine's steps.

Each ``--interval`` it times :func:`specwise.bench.host.python_loop_ns` (``--iterations`` per round, one round,
about 2-4 ms) and appends ``{"t": wall clock, "ns": ns per iteration}`` to ``--out`` (gzip, one JSON per line).
Run pinned to a CPU nothing else is pinned to: ``taskset -c 15 python3 host_speed_probe.py --out probe.jsonl.gz``;
stop with SIGTERM.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import time

from specwise.bench.host import python_loop_ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--iterations", type=int, default=50_000)
    args = ap.parse_args()
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with gzip.open(args.out, "at") as out:
        while not stopping:
            ns = python_loop_ns(iterations=args.iterations, rounds=1)
            out.write(json.dumps({"t": round(time.time(), 3), "ns": round(ns, 2)}) + "\n")
            out.flush()
            time.sleep(args.interval)


if __name__ == "__main__":
    main()

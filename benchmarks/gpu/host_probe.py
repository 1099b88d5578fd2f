"""Host probe for the GPU rounds: how fast this machine's CPU and its CUDA round trips are, right now.

Why: vLLM's V1 synchronous runner (draft_model and n-gram on 0.26) leaves the GPU idle while the host prepares
each pass, so the same GPU on another machine instance, or under other load, can run a speculative step at a
different speed. The probe times the host work that loop is made of, so that rounds can be compared by
host as well as by GPU:

* ``python_loop_ns``: one iteration of a pure-Python loop (interpreter speed, one core);
* ``launch_us``: one tiny CUDA kernel launch, queued without waiting (launch overhead);
* ``sync_rtt_us``: a tiny kernel plus ``torch.cuda.synchronize()`` (the round trip a synchronous step pays);
* ``d2h_us``: a small device-to-host copy (``.tolist()`` of sampled token ids, as the V1 runner does per pass).

Each figure is the median of ``--rounds`` timed rounds. Run on the device next to the servers (torch from the
image, specwise's ``src`` on ``PYTHONPATH``): ``PYTHONPATH=src python3 host_probe.py --label before --out
probe_host.jsonl`` appends one JSON line. The Python loop is :func:`specwise.bench.host.python_loop_ns`, the one
``bench`` records for its own host, so the two compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def _median_round(fn, rounds: int) -> float:
    return statistics.median(fn() for _ in range(rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    import torch

    from specwise.bench.host import python_loop_ns

    row: dict = {"label": args.label, "time": time.time(), "loadavg": os.getloadavg(), "cpus": os.cpu_count(),
                 "python_loop_ns": python_loop_ns(2_000_000, args.rounds)}
    if torch.cuda.is_available():
        x = torch.zeros(16, device="cuda")
        torch.cuda.synchronize()

        def launch(n: int = 2000) -> float:
            torch.cuda.synchronize()
            t = time.perf_counter_ns()
            for _ in range(n):
                x.add_(1)
            per = (time.perf_counter_ns() - t) / n / 1e3
            torch.cuda.synchronize()
            return per

        def sync_rtt(n: int = 1000) -> float:
            t = time.perf_counter_ns()
            for _ in range(n):
                x.add_(1)
                torch.cuda.synchronize()
            return (time.perf_counter_ns() - t) / n / 1e3

        def d2h(n: int = 1000) -> float:
            t = time.perf_counter_ns()
            for _ in range(n):
                x.tolist()
            return (time.perf_counter_ns() - t) / n / 1e3

        for fn in (launch, sync_rtt, d2h):  # first calls pay lazy init
            fn(50)
        row.update(launch_us=_median_round(launch, args.rounds), sync_rtt_us=_median_round(sync_rtt, args.rounds),
                   d2h_us=_median_round(d2h, args.rounds), gpu=torch.cuda.get_device_name())
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()

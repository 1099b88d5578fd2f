"""Simulator speed: simulated requests per wall-clock second.

Target (issue 3): one simulated hour of a 70B model at 10 QPS (~36,000 requests) in under 10 s of wall
time on the 2-core CI machine. Runs the default `specwise simulate` deployment (Llama-3.1-70B-Instruct
on 4x H100 with a Llama-3.2-1B-Instruct draft, chat-like lengths) for baseline and fixed-k speculation.
"""

from __future__ import annotations

import time

from specwise.simulate.defaults import default_deployment
from specwise.simulate.policy import SpecPolicy
from specwise.simulate.run import simulate_cell
from specwise.simulate.workload import ArrivalSpec, WorkloadSpec

TARGET_WALL_S = 10.0
SIM_HOUR_S = 3600.0
QPS = 10.0


def main() -> None:
    dep, k = default_deployment()
    workload = WorkloadSpec(arrival=ArrivalSpec(kind="poisson", qps=QPS), duration_s=SIM_HOUR_S,
                            prompt_len=dep_prompt(), output_len=dep_output())
    for name, policy in [("baseline", SpecPolicy(kind="off")), (f"speculative k={k}", SpecPolicy(kind="fixed", k=k))]:
        t0, c0 = time.perf_counter(), time.process_time()
        run = simulate_cell(dep, workload, policy, seed=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = run.summary.requests_ok + run.summary.requests_failed
        print(f"{name:>18}: {n} requests, {run.engine.steps} engine steps, simulated {run.engine.now:.0f} s "
              f"in {wall:.2f} s wall ({cpu:.2f} s CPU) -> {n / wall:,.0f} simulated requests/s; "
              f"target {TARGET_WALL_S:.0f} s -> ratio {TARGET_WALL_S / wall:.2f} wall, "
              f"{TARGET_WALL_S / cpu:.2f} CPU (>1 meets target; wall suffers when the machine is shared)")


def dep_prompt():
    from specwise.simulate.defaults import DEFAULT_PROMPT_LEN
    return DEFAULT_PROMPT_LEN


def dep_output():
    from specwise.simulate.defaults import DEFAULT_OUTPUT_LEN
    return DEFAULT_OUTPUT_LEN


if __name__ == "__main__":
    main()

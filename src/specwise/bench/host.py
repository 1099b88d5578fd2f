"""The machine the bench runs on: host-side engine costs (scheduling, launches between a draft's passes) depend on
its CPU, so a measured run records it (``RunResult.config.client_host``), with the time of one pure-Python loop
iteration: on the H200 machines of issue 12, the instance whose loop took twice as long (76 vs 38 ns) ran the
synchronous speculative step 1.3-1.9x slower, which is what the calibrations' host classes stand for."""

from __future__ import annotations


def host_info() -> dict[str, object]:
    """CPU model and logical CPUs of this machine (where the bench ran, and launched servers with it)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu_model": model, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "python_loop_ns": round(python_loop_ns(), 1)}


def python_loop_ns(iterations: int = 200_000, rounds: int = 5) -> float:
    """Median ns per iteration of a pure-Python loop (interpreter and core speed; about 40-80 ms in all).

    ``benchmarks/gpu/host_probe.py`` times the GPU hosts with it (2,000,000 iterations), so a bench host compares
    with the calibrations' probes (CPython versions differ a little: the probes ran 3.12)."""
    import statistics
    import time

    def once() -> float:
        t = time.perf_counter_ns()
        acc = 0
        for i in range(iterations):
            acc += i & 7
        return (time.perf_counter_ns() - t) / iterations

    return statistics.median(once() for _ in range(rounds))

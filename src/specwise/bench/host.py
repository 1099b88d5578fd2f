"""The machine the bench runs on: host-side engine costs (scheduling, launches between a draft's passes) depend on
its CPU, so a measured run records it (``RunResult.config.client_host``)."""

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
    return {"cpu_model": model, "logical_cpus": os.cpu_count(), "platform": platform.platform()}

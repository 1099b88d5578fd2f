"""Thread sampler for the GPU rounds: which CPU every busy thread ran on, how long it ran and how long it waited.

Why: the draft_model server of vLLM 0.26 (V1 runner, synchronous) switches between two step speeds for seconds
at a time at one load (rounds 3 and 4), while the GPU clock stays at its maximum. Its step is host-bound, so the
candidates are on the host: the engine thread waiting for a CPU (run-queue delay), moving between CPUs, sharing
one with another busy thread, or losing time to the hypervisor (steal). ``top`` every 2 s sees none of that. No
library samples Linux scheduler statistics per thread (psutil gives CPU times and the current CPU but not the
run-queue delay of ``/proc/<pid>/task/<tid>/schedstat``), so this reads ``/proc`` directly.

Every ``--interval`` seconds it appends one JSON line to ``--out`` (gzip):

* ``t``: wall clock (``time.time()``), to join with bench's per-cell ``started_at`` and per-request ``sent_s``;
* ``cpus``: per CPU, the ticks (1/100 s) spent in user, system, idle, iowait, irq+softirq and steal since the last
  sample (``/proc/stat``);
* ``mhz``: per CPU, ``cpu MHz`` from ``/proc/cpuinfo`` (what the guest sees);
* ``threads``: each thread that ran since the last sample: pid, tid, process and thread names, the CPU it was
  last on, ticks run (utime+stime), nanoseconds on CPU and waiting on a run queue (schedstat deltas) and time
  slices.

Run beside the servers: ``python3 thread_sampler.py --out /tmp/res/threads.jsonl.gz --interval 0.5``; stop
with SIGTERM (it closes the file cleanly). Costs about 5-10% of one core at 0.5 s
(one read of ``stat`` and ``schedstat`` per thread).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import time

_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _cpu_ticks() -> dict[str, list[int]]:
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                out[name] = [int(v) for v in vals[:len(_STAT_FIELDS)]]
    return out


def _cpu_mhz() -> list[float]:
    with open("/proc/cpuinfo") as f:
        return [round(float(line.split(":")[1])) for line in f if line.startswith("cpu MHz")]


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the thread ended between listing and reading
        return None


def _threads() -> dict[int, tuple[int, str, str, int, int]]:
    """tid -> (pid, process name, thread name, last CPU, utime+stime ticks)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        pcomm = (_read(f"/proc/{pid}/comm") or "?").strip()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            stat = _read(f"/proc/{pid}/task/{tid}/stat")
            if stat is None:
                continue
            # the name is in parentheses and may hold spaces: split after the last ')'
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            rest = stat[stat.rindex(")") + 2:].split()
            # rest[0] is field 3 (state): utime is field 14, stime 15, processor 39
            out[int(tid)] = (int(pid), pcomm, name, int(rest[36]), int(rest[11]) + int(rest[12]))
    return out


def _schedstat(pid: int, tid: int) -> tuple[int, int, int] | None:
    raw = _read(f"/proc/{pid}/task/{tid}/schedstat")
    if not raw:
        return None
    run_ns, wait_ns, slices = (int(v) for v in raw.split()[:3])
    return run_ns, wait_ns, slices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()

    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    prev_cpu = _cpu_ticks()
    prev_thr = _threads()
    prev_sched = {tid: _schedstat(v[0], tid) for tid, v in prev_thr.items()}
    with gzip.open(args.out, "at") as out:
        while not stopping:
            time.sleep(args.interval)
            t = time.time()
            cpu = _cpu_ticks()
            thr = _threads()
            cpus = {name: dict(zip(_STAT_FIELDS, (a - b for a, b in zip(v, prev_cpu.get(name, v)))))
                    for name, v in cpu.items()}
            rows = []
            sched = {tid: _schedstat(v[0], tid) for tid, v in thr.items()}
            for tid, (pid, pcomm, name, last_cpu, ticks) in thr.items():
                ss, old = sched[tid], prev_sched.get(tid)
                before = prev_thr.get(tid)
                if ss is None:
                    continue
                if old is None:  # a new thread: everything it ran so far is this interval's
                    old = (0, 0, 0)
                if ss[0] - old[0] <= 0:  # did not run
                    continue
                rows.append({"pid": pid, "tid": tid, "proc": pcomm, "name": name, "cpu": last_cpu,
                             "ticks": ticks - (before[4] if before else 0), "run_ns": ss[0] - old[0],
                             "wait_ns": ss[1] - old[1], "slices": ss[2] - old[2]})
            out.write(json.dumps({"t": round(t, 3), "cpus": cpus, "mhz": _cpu_mhz(), "threads": rows},
                                 separators=(",", ":")) + "\n")
            out.flush()
            prev_cpu, prev_thr, prev_sched = cpu, thr, sched


if __name__ == "__main__":
    main()

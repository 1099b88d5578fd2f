#!/usr/bin/env bash
# Sixth H200 round for the vLLM 0.26 calibration (issue 12): is the draft_model server's slow mode the host
# itself slowing down? Round 5 found, in the windows where its step was slow, the engine thread running the whole
# time (no run-queue wait, no steal), the GPU less busy (it waits for the host), pinning changing nothing, and the
# one-shot host probe reading 39-75 ns per Python loop iteration at different minutes of one machine.
#   1. host probe; base and dhigh (4 GiB KV each), as rounds 4 and 5
#   2. the host-speed probe (benchmarks/gpu/host_speed_probe.py: a Python loop timed ten times a second, pinned to
#      the last CPU) and the thread sampler, beside nvidia-smi and top, from before the servers start to the end
#   3. S: base vs dhigh at 2/8/24 req/s, 30-s cells, unpinned: the probe's speed and the step joined per window
# Run on the device after setup-on-device.sh, from the repository root, with .gpu/ carried:
#   setsid nohup bash .gpu/round6.sh > /tmp/res/orch.out 2>&1 < /dev/null &
source "$(dirname "${BASH_SOURCE[0]}")/rounds_lib.sh"

PROBE_CPU=$(( $(nproc) - 1 ))
PYTHONPATH=$G/src taskset -c $PROBE_CPU python3 $G/host_speed_probe.py --out $R/host_speed.jsonl.gz \
  > $R/host_speed.log 2>&1 &
SPEED=$!
hprobe start
launch base 8001 "" ""
launch dhigh 8003 "" "$(draft $HIGH)"
wait_ready base dhigh
monitors_start
python3 $G/thread_sampler.py --out $R/threads.jsonl.gz --interval 0.5 > $R/thread_sampler.log 2>&1 &
SAMPLER=$!
hprobe servers_up
if [ "$(left)" -ge 240 ]; then BENCH_DURATION=30 bench S base dhigh 2,8,24 1; else log "skip S: $(left) s left"; fi
kill -TERM $SAMPLER $SPEED 2>/dev/null; sleep 1
finish base dhigh

#!/usr/bin/env bash
# Fourth H200 round for the vLLM 0.26 calibration (issue 12): the held-out HIGH sweep with nothing else on the GPU.
# Round 3 found the speculative (V1, synchronous) server bimodal while two idle servers shared the GPU and host
# (TPOT 3.4 or 4.0-5.5 ms at the same load) and steady once they were stopped (3.2-3.5 ms at 2/8/24 req/s, one
# repeat). This round checks that on a fresh machine with the whole sweep and repeats: only base and dhigh run,
# as in a user's own A/B.
#   1. host probe; base and dhigh (4 GiB KV each); the step probe on both (round 1's warm-up)
#   2. A_solo_full: base vs dhigh at 2/8/24/48/64/96 req/s, 10-s cells, 2 repeats; host probe
# Run on the device after setup-on-device.sh, from the repository root, with .gpu/ carried:
#   setsid nohup bash .gpu/round4.sh > /tmp/res/orch.out 2>&1 < /dev/null &
source "$(dirname "${BASH_SOURCE[0]}")/rounds_lib.sh"

hprobe start
launch base 8001 "" ""
launch dhigh 8003 "" "$(draft $HIGH)"
wait_ready base dhigh
monitors_start
hprobe servers_up
echo "probe: python3 gpu_step_probe.py --server base=8001 --server dhigh=8003 --batches 1,2,4,8,16,32,64,128 --max-tokens 64" >> $R/commands.txt
timeout 240 python3 $G/gpu_step_probe.py --server base=8001 --server dhigh=8003 --batches 1,2,4,8,16,32,64,128 \
  --max-tokens 64 --out $R/probe.json > $R/probe.log 2>&1
log "step probe done rc=$?"
bench A_solo_full base dhigh 2,8,24,48,64,96 2
finish base dhigh

#!/usr/bin/env bash
# Third H200 round for the vLLM 0.26 calibration (issue 12): a held-out check on a fresh machine instance, with
# repeats, a host probe, and a test of whether the other servers on the GPU slow the speculative one down.
# Run on the device after setup-on-device.sh, from the repository root, with .gpu/ carried:
#   setsid nohup bash .gpu/round3.sh > /tmp/res/orch.out 2>&1 < /dev/null &
# It outlives one device call (setsid); each call waits on it and tars /tmp/res into $OUT.
#
# Round 2's draft_model steps ran 1.5-1.9x slower than round 1's at low load with the same image, flags and
# CPU model string. Round 3 asks: is that the machine instance (host probe), the warm-up (round 1 warmed every
# server with the step probe, round 2 with a 2-s throw-away bench), or the neighbours (five servers on one GPU)?
#   1. host probe; four servers at once (base, lfl, dhigh, dlow; 4 GiB KV each, as round 2)
#   2. A0: base vs dhigh at 2/8/24 req/s after round 2's warm-up only (one 10-s cell each)
#   3. the step probe on every server (round 1's warm-up); host probe
#   4. A: base vs dhigh (2/8/24/48/64/96 req/s), B: lfl vs dlow (2-64), 10-s cells, 2 repeats; host probe after each
#   5. only base and dhigh left running: A_solo at 2/8/24 (neighbours' effect); host probe
source "$(dirname "${BASH_SOURCE[0]}")/rounds_lib.sh"

hprobe start
launch base 8001 "" ""
launch lfl 8002 "env VLLM_USE_V2_MODEL_RUNNER=0" "" --no-async-scheduling
launch dhigh 8003 "" "$(draft $HIGH)"
launch dlow 8005 "" "$(draft $LOW)"
wait_ready base lfl dhigh dlow
nvidia-smi > $R/nvidia_smi_up.txt 2>&1
monitors_start
hprobe servers_up

warm2 base dhigh
bench A0_base_dhigh_r2warm base dhigh 2,8,24 1

SERVERS=""; for s in base lfl dhigh dlow; do up $s && SERVERS="$SERVERS --server $s=${PORTS[$s]}"; done
echo "probe: python3 gpu_step_probe.py$SERVERS --batches 1,2,4,8,16,32,64,128 --max-tokens 64" >> $R/commands.txt
timeout 240 python3 $G/gpu_step_probe.py $SERVERS --batches 1,2,4,8,16,32,64,128 --max-tokens 64 --out $R/probe.json > $R/probe.log 2>&1
log "step probe done rc=$?"
hprobe after_step_probe

bench A_base_dhigh base dhigh 2,8,24,48,64,96 2
hprobe after_A
bench B_lfl_dlow lfl dlow 2,8,24,48,64 2
hprobe after_B

stop lfl dlow
hprobe solo
[ $(left) -gt 100 ] && bench A_solo_base_dhigh base dhigh 2,8,24 1
finish base dhigh

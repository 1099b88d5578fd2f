#!/usr/bin/env bash
# Fifth H200 round for the vLLM 0.26 calibration (issue 12): what switches the draft_model server between its two
# step speeds? Rounds 3 and 4 saw its TPOT at one load hold one value for seconds and then another (6.4 ms for
# 4 s, then 3.6 ms, within one 10-s cell), with the acceptance steady and the GPU clock at its maximum; the
# baseline (async scheduling) stayed steady. Its step is host-bound, so this round watches the host per thread
# and changes one thing: CPU placement.
#   1. host probe; CPU topology; base and dhigh (4 GiB KV each), as round 4
#   2. the thread sampler (benchmarks/gpu/thread_sampler.py: per-thread CPU, run time, run-queue wait, steal)
#      beside nvidia-smi (100 ms) and top, for the whole round
#   3. U1: base vs dhigh at 2/8/24/48 req/s, 20-s cells, unpinned (as rounds 3-4)
#   4. P1: the same, pinned: dhigh's engine process alone on CPUs 2-3, the rest of dhigh on 4-5, base on 6-9,
#      bench, sampler and monitors on 10-15
#   5. U2 (unpinned again), P2 (pinned again): the order is not the cause if U and P each agree
# Run on the device after setup-on-device.sh, from the repository root, with .gpu/ carried:
#   setsid nohup bash .gpu/round5.sh > /tmp/res/orch.out 2>&1 < /dev/null &
source "$(dirname "${BASH_SOURCE[0]}")/rounds_lib.sh"

ENGINE_CPUS=2-3; SPEC_REST_CPUS=4-5; BASE_CPUS=6-9; CLIENT_CPUS=10-15; ALL_CPUS=0-$(( $(nproc) - 1 ))
{ lscpu -e; echo; lscpu -p=CPU,CORE,SOCKET,NODE,CACHE; } > $R/topology.txt 2>&1

hprobe start
launch base 8001 "" ""
launch dhigh 8003 "" "$(draft $HIGH)"
wait_ready base dhigh
monitors_start
python3 $G/thread_sampler.py --out $R/threads.jsonl.gz --interval 0.5 > $R/thread_sampler.log 2>&1 &
SAMPLER=$!
hprobe servers_up

tree() { pgrep -g "${PIDS[$1]}"; }  # every process of a server (launch runs each in its own session)
affinity() {  # LABEL: every server process's name and allowed CPUs, into $R/affinity_LABEL.txt
  local name p
  for name in base dhigh; do for p in $(tree $name); do
    echo "$name $p $(cat /proc/$p/comm 2>/dev/null) $(taskset -cp $p 2>/dev/null | sed 's/.*: //')"
  done; done > $R/affinity_$1.txt
  for p in $SAMPLER $SMI $TOP; do echo "monitor $p $(cat /proc/$p/comm 2>/dev/null) $(taskset -cp $p 2>/dev/null | sed 's/.*: //')"; done >> $R/affinity_$1.txt
}
pin() {
  local p
  for p in $(tree dhigh); do
    if grep -q EngineCor /proc/$p/comm 2>/dev/null; then taskset -a -cp $ENGINE_CPUS $p > /dev/null
    else taskset -a -cp $SPEC_REST_CPUS $p > /dev/null; fi
  done
  for p in $(tree base); do taskset -a -cp $BASE_CPUS $p > /dev/null; done
  for p in $SAMPLER $SMI $TOP; do taskset -a -cp $CLIENT_CPUS $p > /dev/null 2>&1; done
  log "pinned: dhigh engine $ENGINE_CPUS, dhigh rest $SPEC_REST_CPUS, base $BASE_CPUS, client $CLIENT_CPUS"
}
unpin() {
  local p
  for p in $(tree dhigh) $(tree base) $SAMPLER $SMI $TOP; do taskset -a -cp $ALL_CPUS $p > /dev/null 2>&1; done
  log "unpinned: every process may run on $ALL_CPUS"
}
step() {  # LABEL PINNED(0/1)
  if [ "$(left)" -lt 280 ]; then log "skip $1: $(left) s left of the round's budget"; return 1; fi
  if [ "$2" = 1 ]; then pin; BENCH_PREFIX="taskset -c $CLIENT_CPUS"; else unpin; BENCH_PREFIX=""; fi
  affinity $1
  echo "$1: pinned=$2 ${BENCH_PREFIX}" >> $R/commands.txt
  BENCH_PREFIX=$BENCH_PREFIX BENCH_DURATION=20 bench $1 base dhigh 2,8,24,48 1
  hprobe after_$1
}

step U1 0 && step P1 1 && step U2 0 && step P2 1
kill -TERM $SAMPLER 2>/dev/null; sleep 1
finish base dhigh

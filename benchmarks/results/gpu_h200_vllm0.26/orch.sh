#!/usr/bin/env bash
# The whole H200 experiment, run on the device machine from the repository root after setup-on-device.sh:
#   setsid nohup bash .gpu/orch.sh > /tmp/res/orch.out 2>&1 &
# It outlives one device call (setsid); each call tars /tmp/res into $OUT. Steps:
#   1. five vLLM 0.26 servers side by side on the one H200, started one after the other (each waits for /health,
#      so no two memory profiles overlap), each with its own --gpu-memory-utilization share;
#   2. step-time probe (benchmarks/gpu_step_probe.py) at fixed batch sizes on every server;
#   3. `specwise bench` QPS sweeps against the running servers (same seed: every arm gets the same requests on
#      the same schedule, so any baseline arm pairs with any speculative arm);
#   4. all servers stopped, then target-only and target+draft started alone at the default memory setting
#      (startup logs for the plan's memory check), if time allows.
set -u
G=$PWD/.gpu
R=/tmp/res
mkdir -p $R
source /tmp/vllm-env.sh
T0=$(date +%s)
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a $R/orch.log; }
SW="env PYTHONPATH=/tmp/site:$G/src python3 -m specwise.cli.main"
TARGET=/tmp/models/target
DRAFT=/tmp/models/draft
COMMON="--host 127.0.0.1 --max-model-len 2048 --seed 0"
HIGH='[0.9,0.8,0.7,0.6]'
LOW='[0.5,0.3,0.15,0.05]'
declare -A PIDS

{ echo "# host"; date -u; uname -a; nproc; lscpu; free -g; nvidia-smi;
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv;
  python3 -c 'import vllm, torch, sys; print("vllm", vllm.__version__, "torch", torch.__version__, "python", sys.version)';
  env PYTHONPATH=/tmp/site:$G/src python3 -c 'import specwise, pydantic; print("specwise import ok, pydantic", pydantic.VERSION)';
} > $R/host.txt 2>&1
log "host: $(grep -m1 'Model name' $R/host.txt | sed 's/ \+/ /g'), $(nproc) CPUs"

start() {  # NAME PORT ENVPREFIX ARGS... ; waits for /health
  local name=$1 port=$2 envp=$3; shift 3
  local cmd="$envp python3 -m vllm.entrypoints.cli.main serve $TARGET $COMMON --port $port $*"
  echo "$name: $cmd" >> $R/commands.txt
  log "start $name: $cmd"
  local t=$(date +%s)
  setsid bash -c "exec $cmd" > $R/server_$name.log 2>&1 &
  PIDS[$name]=$!
  for _ in $(seq 1 400); do
    if curl -sf http://127.0.0.1:$port/health > /dev/null 2>&1; then
      log "ready $name after $(( $(date +%s) - t ))s"; return 0; fi
    if ! kill -0 ${PIDS[$name]} 2>/dev/null; then log "FAILED $name (exited)"; tail -20 $R/server_$name.log | tee -a $R/orch.log; return 1; fi
    sleep 1
  done
  log "FAILED $name (not ready in 400 s)"; return 1
}
stop() { local name=$1; [ -n "${PIDS[$name]:-}" ] && kill -TERM -- -${PIDS[$name]} 2>/dev/null; sleep 4; kill -KILL -- -${PIDS[$name]} 2>/dev/null; unset "PIDS[$name]"; }

spec() {  # METHOD RATES -> --speculative-config JSON (shell-quoted)
  if [ "$1" = draft_model ]; then
    echo "--speculative-config '{\"method\":\"draft_model\",\"model\":\"$DRAFT\",\"num_speculative_tokens\":4,\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_rates\":$2}'"
  else
    echo "--speculative-config '{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_min\":1,\"prompt_lookup_max\":3,\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_rates\":$2}'"
  fi
}

# 1. servers side by side (shares of 140 GiB: 0.17 for target-only, 0.21 with the draft; 0.93 in all)
start base 8001 "" --gpu-memory-utilization 0.17
start lfl 8002 "env VLLM_USE_V2_MODEL_RUNNER=0" --gpu-memory-utilization 0.17 --no-async-scheduling
start dhigh 8003 "" --gpu-memory-utilization 0.21 "$(spec draft_model "$HIGH")"
start dlow 8004 "" --gpu-memory-utilization 0.21 "$(spec draft_model "$LOW")"
start ngram 8005 "" --gpu-memory-utilization 0.17 "$(spec ngram "$HIGH")" || {
  stop ngram; log "ngram with synthetic rates failed; plain ngram instead"
  start ngram 8005 "" --gpu-memory-utilization 0.17 "--speculative-config '{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_min\":1,\"prompt_lookup_max\":3}'"; }
nvidia-smi > $R/nvidia_smi_all_up.txt 2>&1

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm --format=csv,noheader -lms 100 > $R/gpu_util.csv 2>&1 &
SMI=$!
# CPU load of every process while measuring (host-bound check): one line per second
(while true; do date +%s; top -b -n1 -w 200 | head -25; sleep 1; done) > $R/top.log 2>&1 &
TOP=$!

# 2. step-time probe
SERVERS=""
for s in base=8001 lfl=8002 dhigh=8003 dlow=8004 ngram=8005; do
  curl -sf http://127.0.0.1:${s#*=}/health >/dev/null 2>&1 && SERVERS="$SERVERS --server $s"; done
log "probe:$SERVERS"
echo "probe: python3 .gpu/gpu_step_probe.py$SERVERS --batches 1,2,4,8,16,32,64,128,256 --max-tokens 64" >> $R/commands.txt
python3 $G/gpu_step_probe.py $SERVERS --batches 1,2,4,8,16,32,64,128,256 --max-tokens 64 --out $R/probe.json \
  > $R/probe.log 2>&1
log "probe done"

# 3. bench sweeps (same options, same seed, for every pair)
BOPTS="--api completions --workload $G/prompts_t32.jsonl --temperatures 0 --qps 2,6,16,32,64,128 --duration 6 --max-tokens 128 --ignore-eos --no-lossless --k 4 --warmup 4"
bench() {  # NAME BASEPORT SPECPORT
  local cmd="$SW bench --baseline http://127.0.0.1:$2 --speculative http://127.0.0.1:$3 $BOPTS --out $R/bench_$1 --json"
  echo "bench_$1: $cmd" >> $R/commands.txt
  log "bench $1"
  $cmd > $R/bench_$1.json 2> $R/bench_$1.err
  log "bench $1 rc=$?"
}
bench A_base_dhigh 8001 8003
bench B_lfl_dlow 8002 8004
bench C_base_ngram 8001 8005
# 3b. vLLM 0.26 disables async scheduling for draft_model only when --async-scheduling is not given
# (vllm/config/vllm.py): the same draft_model server with the flag, in place of dlow and ngram
stop dlow; stop ngram; sleep 2
start dhigh_async 8006 "" --gpu-memory-utilization 0.21 --async-scheduling "$(spec draft_model "$HIGH")" && {
  echo "probe_async: python3 .gpu/gpu_step_probe.py --server dhigh_async=8006 --batches 1,2,4,8,16,32,64,128,256 --max-tokens 64" >> $R/commands.txt
  python3 $G/gpu_step_probe.py --server dhigh_async=8006 --batches 1,2,4,8,16,32,64,128,256 --max-tokens 64 \
    --out $R/probe_async.json > $R/probe_async.log 2>&1
  bench D_lfl_dhighasync 8002 8006; }
touch $R/MEASURED
kill $SMI $TOP 2>/dev/null

# 4. default-memory startup logs (each server alone on the GPU)
for n in base lfl dhigh dhigh_async; do stop $n; done
sleep 3
nvidia-smi > $R/nvidia_smi_all_down.txt 2>&1
if [ $(( $(date +%s) - T0 )) -lt 1140 ]; then
  start base_default 8001 "" && stop base_default
fi
log "all done"
touch $R/DONE

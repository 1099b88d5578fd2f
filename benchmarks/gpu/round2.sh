#!/usr/bin/env bash
# Second H200 round for the vLLM 0.26 calibration (issue 12), run on the device machine after
# setup-on-device.sh, from the repository root, with everything it needs in .gpu/ (carried by every call):
#   setsid nohup bash .gpu/round2.sh > /tmp/res/orch.out 2>&1 < /dev/null &
# It outlives one device call (setsid); each call waits on it and tars /tmp/res into $OUT. It runs specwise from
# a private copy of src/ and of the prompt files in /tmp/g (the checkout on the device changes with every call).
#
# Phase A: five servers at once, each with a 4 GiB KV cache (--kv-cache-memory-bytes), so they fit side by side:
#   base   (default engine: V2 model runner + async scheduling)
#   lfl    (like-for-like baseline: VLLM_USE_V2_MODEL_RUNNER=0 --no-async-scheduling)
#   dhigh / dmid / dlow  (draft_model k=4, synthetic acceptance HIGH / MID / LOW)
#   then `specwise bench` pairs over one QPS grid (same seed: every arm gets the same requests and schedule).
# Phase B: the draft servers stop; an n-gram server and an EAGLE-1 head server start; benches on copy-heavy prompts.
# Optional repeats (seed 1) run only while the time budget ROUND2_BUDGET_S (default 1150 s) allows.
set -u
rm -rf /tmp/g && mkdir -p /tmp/g && cp -r src /tmp/g/src && cp benchmarks/results/gpu_h200_vllm0.26/prompts_*.jsonl /tmp/g/
G=/tmp/g
R=/tmp/res
mkdir -p $R
source /tmp/vllm-env.sh
T0=$(date +%s)
BUDGET=${ROUND2_BUDGET_S:-1150}
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a $R/orch.log; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
SW="env PYTHONPATH=/tmp/site:$G/src python3 -m specwise.cli.main"
TARGET=/tmp/models/target
COMMON="--host 127.0.0.1 --max-model-len 2048 --seed 0 --gpu-memory-utilization 0.1 --kv-cache-memory-bytes 4294967296"
HIGH='[0.9,0.8,0.7,0.6]'
MID='[0.8,0.6,0.4,0.2]'
LOW='[0.5,0.3,0.15,0.05]'
QPS=2,8,24,48,64,96,128
declare -A PIDS PORTS

{ echo "# host"; date -u; uname -a; nproc; lscpu; free -g; nvidia-smi;
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv;
  python3 -c 'import vllm, torch, sys; print("vllm", vllm.__version__, "torch", torch.__version__, "python", sys.version)';
} > $R/host.txt 2>&1
log "host: $(grep -m1 'Model name' $R/host.txt | sed 's/ \+/ /g'), $(nproc) CPUs"

draft() { echo "{\"method\":\"draft_model\",\"model\":\"/tmp/models/draft\",\"num_speculative_tokens\":4,\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_rates\":$1}"; }
launch() {  # NAME PORT ENVPREFIX [SPECJSON] [EXTRA...]: starts in the background, does not wait
  local name=$1 port=$2 envp=$3 spec=$4; shift 4
  local cmd="$envp python3 -m vllm.entrypoints.cli.main serve $TARGET $COMMON --port $port $*"
  [ -n "$spec" ] && cmd="$cmd --speculative-config '$spec'"
  echo "$name: $cmd" >> $R/commands.txt
  log "launch $name on $port"
  setsid bash -c "exec $cmd" > $R/server_$name.log 2>&1 < /dev/null &
  PIDS[$name]=$!; PORTS[$name]=$port
}
wait_ready() {  # NAME...: waits for /health of each (at most 420 s in all); a failed one is dropped
  local t=$(date +%s) name
  for name in "$@"; do
    while true; do
      if curl -sf http://127.0.0.1:${PORTS[$name]}/health > /dev/null 2>&1; then
        log "ready $name after $(( $(date +%s) - t ))s"; break; fi
      if ! kill -0 ${PIDS[$name]} 2>/dev/null; then
        log "FAILED $name (exited)"; tail -30 $R/server_$name.log | tee -a $R/orch.log; unset "PORTS[$name]"; break; fi
      if [ $(( $(date +%s) - t )) -gt 420 ]; then log "FAILED $name (not ready in 420 s)"; unset "PORTS[$name]"; break; fi
      sleep 1
    done
  done
}
stop() { local name; for name in "$@"; do [ -n "${PIDS[$name]:-}" ] && kill -TERM -- -${PIDS[$name]} 2>/dev/null; done
         sleep 6; for name in "$@"; do [ -n "${PIDS[$name]:-}" ] && kill -KILL -- -${PIDS[$name]} 2>/dev/null; unset "PORTS[$name]"; done; }
up() { [ -n "${PORTS[$1]:-}" ]; }
bench() {  # LABEL BASE SPEC WORKLOAD [EXTRA...]: one specwise bench pair, its RunResult in $R/LABEL.result.json
  local label=$1 b=$2 s=$3 wl=$4; shift 4
  up $b && up $s || { log "skip $label: $b or $s is not up"; return 1; }
  local cmd="$SW bench --baseline http://127.0.0.1:${PORTS[$b]} --speculative http://127.0.0.1:${PORTS[$s]} --api completions --workload $G/$wl --temperatures 0 --qps $QPS --duration 8 --max-tokens 128 --ignore-eos --no-lossless --k 4 --warmup 8 --json --out $R/$label $*"
  echo "$label: $cmd" >> $R/commands.txt
  log "bench $label ($b vs $s, $wl)"
  $cmd > $R/$label.result.json 2> $R/$label.stderr.txt
  log "bench $label done rc=$?: $(grep -c . $R/$label/cells.jsonl 2>/dev/null) cells"
}
warm() {  # BASE SPEC WORKLOAD: a short throw-away bench at low and high load, so Triton JIT and graphs are warm
  up $1 && up $2 || return 0
  $SW bench --baseline http://127.0.0.1:${PORTS[$1]} --speculative http://127.0.0.1:${PORTS[$2]} --api completions \
     --workload $G/$3 --temperatures 0 --qps 4,64 --duration 2 --max-tokens 128 --ignore-eos --no-lossless --k 4 \
     --warmup 4 --out /tmp/warm_$1_$2 --overwrite > /dev/null 2>&1
  log "warmed $1 + $2"
}

# ---- phase A
launch base 8001 "" ""
launch lfl 8002 "env VLLM_USE_V2_MODEL_RUNNER=0" "" --no-async-scheduling
launch dhigh 8003 "" "$(draft $HIGH)"
launch dmid 8004 "" "$(draft $MID)"
launch dlow 8005 "" "$(draft $LOW)"
wait_ready base lfl dhigh dmid dlow
nvidia-smi > $R/nvidia_smi_phase_a.txt 2>&1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm --format=csv,noheader -lms 100 > $R/gpu_util.csv 2>&1 &
SMI=$!
warm base dhigh prompts_t32.jsonl
warm lfl dmid prompts_t32.jsonl
warm lfl dlow prompts_t32.jsonl
bench A1_base_dhigh base dhigh prompts_t32.jsonl
bench A2_lfl_dmid lfl dmid prompts_t32.jsonl
bench A3_lfl_dlow lfl dlow prompts_t32.jsonl
stop dhigh dmid dlow

# ---- phase B
launch ngram 8006 "" "{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_min\":1,\"prompt_lookup_max\":3,\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_rates\":$MID}"
launch eagle 8007 "" "{\"method\":\"eagle\",\"model\":\"/tmp/models/eagle\",\"num_speculative_tokens\":4,\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_rates\":$MID}"
wait_ready ngram eagle
warm lfl ngram prompts_copy32.jsonl
warm base eagle prompts_copy32.jsonl
bench B1_lfl_ngram lfl ngram prompts_copy32.jsonl
bench B2_base_eagle base eagle prompts_copy32.jsonl
# the default baseline on the copy-heavy prompts against n-gram: what a user who just adds n-gram gets
[ $(left) -gt 170 ] && bench B3_base_ngram base ngram prompts_copy32.jsonl
[ $(left) -gt 170 ] && bench B4_lfl_eagle lfl eagle prompts_copy32.jsonl
kill $SMI 2>/dev/null
nvidia-smi > $R/nvidia_smi_end.txt 2>&1
stop base lfl ngram eagle
gzip -f $R/server_*.log $R/gpu_util.csv 2>/dev/null
log "DONE"
touch $R/DONE

# Shared by the H200 round scripts (round3.sh, round4.sh): copies the sources to /tmp/g, and defines the log, host
# probe, server launch/wait/stop and bench helpers. Results go to /tmp/res. Sourced, never run alone.
set -u
rm -rf /tmp/g && mkdir -p /tmp/g && cp -r src /tmp/g/src && cp .gpu/*.py .gpu/*.jsonl /tmp/g/
G=/tmp/g
R=/tmp/res
mkdir -p $R
source /tmp/vllm-env.sh
T0=$(date +%s)
BUDGET=${ROUND_BUDGET_S:-1200}
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a $R/orch.log; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
SW="env PYTHONPATH=/tmp/site:$G/src python3 -m specwise.cli.main"
TARGET=/tmp/models/target
COMMON="--host 127.0.0.1 --max-model-len 2048 --seed 0 --gpu-memory-utilization 0.1 --kv-cache-memory-bytes 4294967296"
HIGH='[0.9,0.8,0.7,0.6]'
LOW='[0.5,0.3,0.15,0.05]'
declare -A PIDS PORTS

{ echo "# host"; date -u; uname -a; nproc; lscpu; free -g; nvidia-smi;
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv;
  python3 -c 'import vllm, torch, sys; print("vllm", vllm.__version__, "torch", torch.__version__, "python", sys.version)';
} > $R/host.txt 2>&1
log "host: $(grep -m1 'Model name' $R/host.txt | sed 's/ \+/ /g'), $(nproc) CPUs"
hprobe() { PYTHONPATH=$G/src python3 $G/host_probe.py --label "$1" --out $R/host_probe.jsonl >> $R/orch.log 2>&1; log "host probe $1"; }

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
bench() {  # LABEL BASE SPEC QPS REPEATS: one specwise bench pair under a time limit; RunResult in $R/LABEL.result.json
  # BENCH_DURATION (cell seconds, 10) and BENCH_PREFIX (a command in front of bench, e.g. taskset) may be set
  local label=$1 b=$2 s=$3 qps=$4 rep=$5
  up $b && up $s || { log "skip $label: $b or $s is not up"; return 1; }
  local cmd="${BENCH_PREFIX:-} $SW bench --baseline http://127.0.0.1:${PORTS[$b]} --speculative http://127.0.0.1:${PORTS[$s]} --api completions --workload $G/prompts_t32.jsonl --temperatures 0 --qps $qps --duration ${BENCH_DURATION:-10} --repeats $rep --max-tokens 128 --ignore-eos --no-lossless --k 4 --warmup 8 --json --out $R/$label"
  echo "$label: $cmd" >> $R/commands.txt
  log "bench $label ($b vs $s, qps $qps x$rep)"
  timeout 480 $cmd > $R/$label.result.json 2> $R/$label.stderr.txt
  log "bench $label done rc=$?: $(grep -c . $R/$label/cells.jsonl 2>/dev/null) cells"
}
warm2() {  # BASE SPEC: round 2's warm-up, a 2-s throw-away bench at 4 and 64 req/s
  up $1 && up $2 || return 0
  timeout 120 $SW bench --baseline http://127.0.0.1:${PORTS[$1]} --speculative http://127.0.0.1:${PORTS[$2]} --api completions \
     --workload $G/prompts_t32.jsonl --temperatures 0 --qps 4,64 --duration 2 --max-tokens 128 --ignore-eos --no-lossless --k 4 \
     --warmup 4 --out /tmp/warm_$1_$2 --overwrite > /dev/null 2>&1
  log "warmed $1 + $2 (round-2 style)"
}

monitors_start() {  # nvidia-smi every 100 ms and top every 2 s, into $R, until monitors_stop
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm,power.draw --format=csv,noheader -lms 100 \
    > $R/gpu_util.csv 2>&1 &
  SMI=$!
  (while true; do date +%s; top -b -n1 -w 200 | head -20; sleep 2; done) > $R/top.log 2>&1 &
  TOP=$!
}
finish() {  # SERVER...: stops the monitors and the servers, a last host probe, compresses the logs, marks DONE
  kill $SMI $TOP 2>/dev/null
  stop "$@"
  hprobe end
  gzip -f $R/server_*.log $R/gpu_util.csv $R/top.log 2>/dev/null
  log "DONE"
  touch $R/DONE
}

#!/usr/bin/env bash
# Round 2, phase B as run (after round2.sh's bench hung between cells, see NOTES.md): stop the three draft_model
# servers, start an n-gram and an EAGLE-1 server (synthetic MID acceptance), then one-cell benches on the
# copy-heavy prompts, each in its own process under `timeout` (EAGLE vs the default baseline, n-gram vs the
# like-for-like one).
source /tmp/vllm-env.sh
R=/tmp/res; T0=$(date +%s)
L() { echo "[$(date -u +%T) +$(( $(date +%s)-T0 ))s] $*" >> $R/pb.log; }
for p in 8003 8004 8005; do P=$(pgrep -f "^python3 -m vllm.*--port $p "); [ -n "$P" ] && kill -TERM -- -$P; done
sleep 8
nvidia-smi --query-gpu=memory.used --format=csv >> $R/pb.log
C="python3 -m vllm.entrypoints.cli.main serve /tmp/models/target --host 127.0.0.1 --max-model-len 2048 --seed 0 --gpu-memory-utilization 0.1 --kv-cache-memory-bytes 4294967296"
NG='{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":1,"prompt_lookup_max":3,"rejection_sample_method":"synthetic","synthetic_acceptance_rates":[0.8,0.6,0.4,0.2]}'
EA='{"method":"eagle","model":"/tmp/models/eagle","num_speculative_tokens":4,"rejection_sample_method":"synthetic","synthetic_acceptance_rates":[0.8,0.6,0.4,0.2]}'
echo "ngram: $C --port 8006 --speculative-config '$NG'" >> $R/commands_b.txt
echo "eagle: $C --port 8007 --speculative-config '$EA'" >> $R/commands_b.txt
setsid bash -c "exec $C --port 8006 --speculative-config '$NG'" > $R/server_ngram.log 2>&1 < /dev/null &
setsid bash -c "exec $C --port 8007 --speculative-config '$EA'" > $R/server_eagle.log 2>&1 < /dev/null &
L launched
for i in $(seq 1 240); do
  a=0; curl -sf localhost:8006/health >/dev/null && a=$((a+1)); curl -sf localhost:8007/health >/dev/null && a=$((a+1))
  [ $a = 2 ] && break; sleep 1; done
L "ready: ngram $(curl -sf localhost:8006/health && echo up) eagle $(curl -sf localhost:8007/health && echo up)"
one() { # LABEL BPORT SPORT QPS
  local o=$R/S_$1_q$4
  L "$1 q$4"
  echo "S_$1_q$4: bench --baseline http://127.0.0.1:$2 --speculative http://127.0.0.1:$3 --workload prompts_copy32.jsonl --qps $4 (rest as in salvage)" >> $R/commands_b.txt
  timeout 75 env PYTHONPATH=/tmp/site:/tmp/g/src python3 -m specwise.cli.main bench --baseline http://127.0.0.1:$2 --speculative http://127.0.0.1:$3 --api completions --workload /tmp/g/prompts_copy32.jsonl --temperatures 0 --qps $4 --duration 8 --max-tokens 128 --ignore-eos --no-lossless --k 4 --warmup 8 --json --out $o > $o.result.json 2> $o.stderr.txt
  L "  rc=$? $(grep -c . $o/cells.jsonl 2>/dev/null) cells"
}
for q in 8 2 24 64; do one B2E 8001 8007 $q; one B1N 8002 8006 $q; done
touch $R/DONE3

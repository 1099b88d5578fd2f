#!/usr/bin/env bash
# Round 2, phase A as finished (run on the device after round2.sh's first bench hung between cells; see
# benchmarks/results/gpu_h200_vllm0.26/NOTES.md): one `specwise bench` process per load, each under `timeout 75`,
# against the five servers round2.sh had started (8001 base, 8002 lfl, 8003 dhigh, 8004 dmid, 8005 dlow).
source /tmp/vllm-env.sh
R=/tmp/res; T0=$(date +%s)
one() { # LABEL BPORT SPORT QPS
  local o=$R/S_$1_q$4
  echo "[$(date -u +%T) +$(( $(date +%s)-T0 ))s] $1 q$4" >> $R/salv.log
  timeout 75 env PYTHONPATH=/tmp/site:/tmp/g/src python3 -m specwise.cli.main bench --baseline http://127.0.0.1:$2 --speculative http://127.0.0.1:$3 --api completions --workload /tmp/g/prompts_t32.jsonl --temperatures 0 --qps $4 --duration 8 --max-tokens 128 --ignore-eos --no-lossless --k 4 --warmup 8 --json --out $o > $o.result.json 2> $o.stderr.txt
  echo "  rc=$? $(grep -c . $o/cells.jsonl 2>/dev/null) cells" >> $R/salv.log
}
for q in 48 64 96; do one A1 8001 8003 $q; done
for q in 2 8 24 48 64; do one A3 8002 8005 $q; done
for q in 2 8 24 48 64; do one A2 8002 8004 $q; done
for q in 96; do one A3 8002 8005 $q; one A2 8002 8004 $q; done
touch $R/DONE2

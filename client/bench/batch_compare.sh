#!/usr/bin/env bash
# Same-run comparison of batched and unbatched Ask serving (issue 17): starts two moke-servers on
# 127.0.0.1 (ephemeral ports, data in a temporary folder): one with --max-batch 1 (each Ask decoded alone
# on a worker), one with --max-batch B; then `moke-bench load --baseline` sends the same load to both in
# turns and prints their throughput and latency side by side, with the ratio. Stops both servers at the end.
#
#   client/bench/batch_compare.sh [BUILD_DIR] [CLIENTS] [MAX_NEW_TOKENS] [SECONDS] [ROUNDS] [MAX_BATCH]
set -euo pipefail
build=${1:-build}
clients=${2:-16}
tokens=${3:-16}
seconds=${4:-10}
rounds=${5:-2}
batch=${6:-16}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start() {  # NAME MAX_BATCH
  "$build/server/moke-server" --listen 127.0.0.1:0 --metrics-listen "" --data-dir "$work/$1" \
    --port-file "$work/$1.port" --max-batch "$2" --snapshot-every 0 --log-level warn &
  pids+=($!)
}
start alone 1
start batched "$batch"
for f in alone batched; do
  for _ in $(seq 600); do [[ -s $work/$f.port ]] && break; sleep 0.1; done
  [[ -s $work/$f.port ]] || { echo "moke-server ($f) did not start" >&2; exit 1; }
done
alone=$(head -1 "$work/alone.port")
batched=$(head -1 "$work/batched.port")
"$build/client/bench/moke-bench" load --server "127.0.0.1:$batched" --baseline "127.0.0.1:$alone" \
  --clients "$clients" --max-new-tokens "$tokens" --seconds "$seconds" --rounds "$rounds" --no-progress

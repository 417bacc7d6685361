#!/usr/bin/env bash
# Runs moke-bench over a matrix of editor configurations x streams, each on a fresh moke-server on
# 127.0.0.1, and prints one Markdown table of the results (also written to OUT/table.md).
#
#   client/bench/run_matrix.sh OUT "name=JSON ..." "stream.jsonl ..." [extra moke-bench run flags]
# e.g.
#   client/bench/run_matrix.sh /tmp/m 'moke={} wise={"method":"wise"}' 'streams/zsre-lke-100.jsonl'
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=$1; configs=$2; streams=$3; shift 3
server=${MOKE_SERVER_BIN:-$here/build/server/moke-server}
bench=${MOKE_BENCH_BIN:-$here/build/client/bench/moke-bench}
mkdir -p "$out"
table="$out/table.md"
echo "| config | stream | Rel. | Gen. | Loc. | Route | Route para. | EM | Hard loc. | Rel. spec. | Gen. reworded | Aliases | EM free | Stop EOS | unedited Rel. | edit p50 (s) | edit p95 (s) | at edit 10 (s) | last (s) |" > "$table"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" >> "$table"
for cfg in $configs; do
  name=${cfg%%=*}; json=${cfg#*=}
  for stream in $streams; do
    run="$out/$name-$(basename "$stream" .jsonl)"
    rm -rf "$run"; mkdir -p "$run"
    echo "$json" > "$run/config.json"
    "$server" --listen 127.0.0.1:0 --metrics-listen "" --data-dir "$run/data" --config "$run/config.json" \
        --port-file "$run/port" --log-level warn > "$run/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do [ -s "$run/port" ] && break; sleep 0.2; done
    port=$(head -1 "$run/port")
    "$bench" run --server "127.0.0.1:$port" --stream "$stream" --out "$run" "$@" > "$run/bench.txt" 2> "$run/bench.err" || true
    kill -TERM "$pid"; wait "$pid" || true
    /usr/bin/python3 - "$run/results.json" "$name" "$(basename "$stream" .jsonl)" >> "$table" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]; l = r["latency_s"]
f = lambda x: "n/a" if x is None else f"{x:.3f}"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {f(m['rel'])} | {f(m.get('gen'))} | {f(m.get('loc'))} | {f(m.get('route'))} | {f(m.get('route_rephrase'))} | "
      f"{f(m.get('em'))} | {f(m.get('hard_loc'))} | {f(m.get('rel_spec'))} | {f(m.get('gen_reworded'))} | {f(m.get('aliases'))} | "
      f"{f(m.get('em_free'))} | {f(m.get('stop_eos'))} | "
      f"{f(m.get('unedited_rel'))} | {f(l.get('median'))} | {f(l.get('p95'))} | {f(l.get('at_edit_10'))} | {f(l.get('last'))} |")
PY
    tail -1 "$table"
  done
done

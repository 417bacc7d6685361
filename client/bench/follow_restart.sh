#!/usr/bin/env bash
# Followers through an editor restart (docs/scaling.md): starts an editor and a follower of it on
# 127.0.0.1 (data in a temporary folder), applies one edit, then runs `moke-bench load` (Ask clients) on
# the follower while the editor is stopped with SIGTERM and, a few seconds later, restarted on the same port
# and data folder; then one more edit, which the follower must serve (ask --min-version). Prints the
# follower's status while the editor is away and after, and the load's result: its "errors" row is the
# number of failed Asks. Stops both servers at the end.
#
#   client/bench/follow_restart.sh [BUILD_DIR] [CLIENTS] [SECONDS]
set -euo pipefail
build=${1:-build}
clients=${2:-4}
seconds=${3:-20}
work=$(mktemp -d)
editor_pid=
follower_pid=
cleanup() {
  for p in $follower_pid $editor_pid; do kill "$p" 2>/dev/null || true; done
  for p in $follower_pid $editor_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cli="$build/client/cli/moke-cli"

wait_port() {  # FILE
  for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "no port file $1" >&2
  return 1
}
wait_serving() {  # ADDRESS
  for _ in $(seq 600); do
    "$cli" --server "$1" status 2>/dev/null | head -1 | grep -qx serving && return 0
    sleep 0.1
  done
  echo "$1 is not serving" >&2
  return 1
}
start_editor() {  # LISTEN
  rm -f "$work/editor.port"
  "$build/server/moke-server" --listen "$1" --metrics-listen "" --data-dir "$work/editor" \
    --port-file "$work/editor.port" >>"$work/editor.log" 2>&1 &
  editor_pid=$!
  wait_port "$work/editor.port"
  wait_serving 127.0.0.1:"$(head -1 "$work/editor.port")"
}

start_editor 127.0.0.1:0
editor=127.0.0.1:$(head -1 "$work/editor.port")
"$build/server/moke-server" --listen 127.0.0.1:0 --metrics-listen "" --follow "$editor" \
  --port-file "$work/follower.port" >"$work/follower.log" 2>&1 &
follower_pid=$!
wait_port "$work/follower.port"
follower=127.0.0.1:$(head -1 "$work/follower.port")
wait_serving "$follower"
"$cli" --server "$editor" edit "Who is the king of the forest?" "Max"

"$build/client/bench/moke-bench" load --server "$follower" --clients "$clients" --seconds "$seconds" --no-progress \
  >"$work/load.log" 2>&1 &
load_pid=$!
sleep $((seconds / 4))
kill -TERM "$editor_pid"
wait "$editor_pid" || true
echo "editor stopped; the follower says:"
"$cli" --server "$follower" status | tail -1
sleep $((seconds / 5))
start_editor "$editor"
echo "editor restarted; one more edit:"
v=$("$cli" --server "$editor" --json edit "Which city is the capital of Mars?" "Olympus" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
"$cli" --server "$follower" ask --min-version "$v" "Which city is the capital of Mars?"
"$cli" --server "$follower" status | tail -1
wait "$load_pid" || true
tail -12 "$work/load.log"

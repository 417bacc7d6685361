#!/usr/bin/env bash
# Checks of deploy/ with the tools that own each format. One check per call, so that ctest reports each:
#   check_configs.sh promtool   promtool check config (and, through it, the alert rules) + check rules
#   check_configs.sh yamllint   yamllint on every YAML file under deploy/ (manifests, compose, provisioning)
#   check_configs.sh compose    docker-compose config on deploy/compose.yaml (Debian's docker-compose 1.29;
#                               no daemon needed), and that it refuses to run without MOKE_TOKEN
#   check_configs.sh json       the dashboard is valid JSON with a uid and panels
# Exit 77 (ctest: skipped) with a SKIPPED line when the tool is not installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
deploy=$repo/deploy
skip() { echo "check_configs $1: SKIPPED: $2 is not installed (scripts/setup installs it)"; exit 77; }

case "${1:?usage: check_configs.sh promtool|yamllint|compose|json}" in
  promtool)
    command -v promtool >/dev/null || skip promtool "promtool (package prometheus)"
    promtool check config "$deploy/prometheus/prometheus.yml"
    promtool check rules "$deploy/prometheus/alerts.yml"
    ;;
  yamllint)
    command -v yamllint >/dev/null || skip yamllint yamllint
    mapfile -t files < <(find "$deploy" -name '*.yaml' -o -name '*.yml' | sort)
    ((${#files[@]} >= 10)) || { echo "only ${#files[@]} YAML files under deploy/"; exit 1; }
    yamllint --strict -c "$deploy/.yamllint.yaml" "${files[@]}"
    echo "yamllint: ${#files[@]} files clean"
    ;;
  compose)
    command -v docker-compose >/dev/null || skip compose docker-compose
    out=$(MOKE_TOKEN=test-token docker-compose -f "$deploy/compose.yaml" config)
    for svc in editor follower-1 follower-2 lb prometheus grafana; do
      grep -q "^  $svc:" <<<"$out" || { echo "compose: no service $svc"; exit 1; }
    done
    # The followers follow the editor, and the load balancer's upstreams are the compose services.
    /usr/bin/python3 - "$out" "$deploy/nginx/moke-lb.conf" <<'PY'
import re, sys, yaml
services = yaml.safe_load(sys.argv[1])["services"]
for f in ("follower-1", "follower-2"):
    cmd = services[f].get("command", [])
    if cmd[:2] != ["--follow", "editor:50051"]:
        sys.exit(f"compose: {f} runs {cmd}, expected --follow editor:50051")
conf = open(sys.argv[2]).read()
for name in re.findall(r"server\s+([a-z0-9-]+):50051", conf):
    if name not in services:
        sys.exit(f"moke-lb.conf: upstream {name} is not a compose service")
PY
    if env -u MOKE_TOKEN docker-compose -f "$deploy/compose.yaml" config >/dev/null 2>&1; then
      echo "compose: config accepted without MOKE_TOKEN (the server would run with no token)"; exit 1
    fi
    echo "docker-compose config: valid ($(docker-compose version --short))"
    ;;
  json)
    /usr/bin/python3 - "$deploy/grafana/dashboards/moke.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d.get("uid") == "moke", "dashboard uid"
panels = [p for p in d["panels"] if p["type"] != "row"]
titles = " ".join(p["title"].lower() for p in panels)
for want in ("edit rate", "edit latency", "ask latency", "queue depth", "expert", "knowledge version", "memory"):
    assert want in titles, f"no panel about {want}"
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
print(f"dashboard: {len(panels)} panels, {sum(len(p.get('targets', [])) for p in panels)} queries")
PY
    ;;
  *) echo "unknown check $1"; exit 2 ;;
esac

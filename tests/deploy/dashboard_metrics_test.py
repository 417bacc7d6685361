#!/usr/bin/python3
"""Every metric the Grafana dashboard and the Prometheus alerts query is one moke-server really exports.

Starts the real moke-server on 127.0.0.1 (port 0, a temporary data folder, the embedded small model),
sends an edit, an ask and a score with moke-cli so that the labelled families have samples, scrapes
/metrics, and checks every PromQL expression of deploy/grafana/dashboards/moke.json and
deploy/prometheus/alerts.yml: each metric name is an exported family (histograms: _bucket/_sum/_count),
each label in a selector is a label that family has, and each literal `label="value"` matcher names a
value the server produced. `up` (made by Prometheus itself) is the only name allowed without a scrape.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "le"}
PROMETHEUS_MADE = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def parse_expr(expr):
    """Returns [(metric, [(label, op, value), ...])] for every metric the expression reads."""
    found = []
    for m in SELECTOR.finditer(expr):
        if m.group(1) and not expr[m.end(1):].lstrip().startswith("("):
            found.append((m.group(1), MATCHER.findall(m.group(2))))
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    rest = re.sub(r'\{[^}]*\}', ' ', rest)
    rest = re.sub(r'\[[^\]]*\]', ' ', rest)
    rest = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', rest)
    named = {name for name, _ in found}
    for m in re.finditer(r'(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?', rest):
        name, call = m.group(1), m.group(2)
        if call or name in PROMQL_WORDS or name in named:
            continue
        found.append((name, []))
        named.add(name)
    return found


def dashboard_exprs(path):
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    out.append((where, v))
                elif k == "query" and isinstance(v, str) and where.startswith("templating"):
                    inner = re.match(r'label_values\((.*),\s*\w+\)$', v.strip())
                    out.append((where, inner.group(1) if inner else v))
                else:
                    walk(v, node.get("title", where) if k != "templating" else "templating")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    with open(path) as f:
        walk(json.load(f), "dashboard")
    return out


def alert_exprs(path):
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r'\s*expr:\s*(.*)$', line)
            if m:
                out.append(("alerts", m.group(1).strip().strip("'")))
    return out


def parse_scrape(text):
    types, labels = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s', line)
            if m:
                ls = labels.setdefault(m.group(1), {})
                for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
                    ls.setdefault(k, set()).add(v)
    names = {}
    for name, kind in types.items():
        names[name] = name
        if kind in ("histogram", "summary"):
            for suffix in ("_sum", "_count") + (("_bucket",) if kind == "histogram" else ()):
                names[name + suffix] = name
    return names, labels


def run_server(args, tmp):
    ports = os.path.join(tmp, "ports")
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen([args.server, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                             "--data-dir", os.path.join(tmp, "data"), "--model", args.model,
                             "--port-file", ports, "--token", "t"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (os.path.exists(ports) and len(open(ports).read().split()) == 2):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("moke-server did not start: " + open(os.path.join(tmp, "server.log")).read()[-2000:])
        time.sleep(0.2)
    grpc_port, metrics_port = open(ports).read().split()
    return proc, grpc_port, metrics_port


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dashboard", required=True)
    p.add_argument("--alerts")
    a = p.parse_args()
    exprs = dashboard_exprs(a.dashboard) + (alert_exprs(a.alerts) if a.alerts else [])
    if len(exprs) < 10:
        raise SystemExit(f"only {len(exprs)} expressions found in {a.dashboard}: the parser is broken")

    with tempfile.TemporaryDirectory() as tmp:
        proc, grpc_port, metrics_port = run_server(a, tmp)
        try:
            cli = [a.cli, "--server", f"127.0.0.1:{grpc_port}", "--timeout", "120", "--json"]
            deadline = time.time() + 120
            while True:
                r = subprocess.run(cli + ["status"], capture_output=True, text=True)
                if r.returncode == 0 and json.loads(r.stdout).get("serving"):
                    break
                if time.time() > deadline:
                    raise SystemExit("moke-server not serving after 120 s")
                time.sleep(0.3)
            for cmd in (["--token", "t", "edit", "The capital of Zorbia is", "Plimtown"],
                        ["ask", "--min-version", "1", "The capital of Zorbia is"],
                        ["score", "The capital of Zorbia is", " Plimtown"],
                        ["edit", "unauthenticated", "x"]):  # an error outcome, expected to fail
                r = subprocess.run(cli + cmd, capture_output=True, text=True)
                if (r.returncode == 0) != (cmd[0] != "edit" or "--token" in cmd):
                    raise SystemExit(f"moke-cli {cmd}: exit {r.returncode}: {r.stderr}")
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    names, labels = parse_scrape(text)
    print(f"scraped {len(set(names.values()))} metric families from moke-server: {', '.join(sorted(set(names.values())))}")
    errors, checked = [], set()
    for where, expr in exprs:
        selectors = parse_expr(expr)
        if not selectors:
            errors.append(f"{where}: no metric in '{expr}'")
        for name, matchers in selectors:
            checked.add(name)
            if name in PROMETHEUS_MADE:
                continue
            if name not in names:
                errors.append(f"{where}: '{name}' is not exported by moke-server (expr: {expr})")
                continue
            family_labels = labels.get(name, {})
            for label, op, value in matchers:
                if label == "instance" or label == "job":
                    continue  # added by Prometheus at scrape time
                if label not in family_labels:
                    errors.append(f"{where}: {name} has no label '{label}' (it has: {sorted(family_labels)})")
                elif op == "=" and "$" not in value and value not in family_labels[label]:
                    errors.append(f"{where}: {name}{{{label}=\"{value}\"}} matches nothing; values seen: "
                                  f"{sorted(family_labels[label])}")
        # Labels that `by (...)` / `without (...)` group on must exist on one of the metrics read.
        have = {"instance", "job", "le"} | {l for n, _ in selectors for l in labels.get(n, {})}
        for group in re.findall(r'\b(?:by|without)\s*\(([^)]*)\)', expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                if label not in have:
                    errors.append(f"{where}: groups by '{label}', a label none of its metrics has (expr: {expr})")
    print(f"checked {len(exprs)} expressions reading {len(checked)} metrics: {', '.join(sorted(checked))}")
    unused = sorted(set(names.values()) - {names.get(n, n) for n in checked})
    if unused:
        print(f"exported but not on the dashboard or in the alerts: {', '.join(unused)}")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

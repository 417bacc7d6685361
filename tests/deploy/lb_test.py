#!/usr/bin/python3
"""The load balancer of deploy/compose.yaml (deploy/nginx/moke-lb.conf, run by Debian's nginx) in front of a
real editor and a real follower, all on 127.0.0.1.

Starts moke-server as the editor (port 0, a temporary data folder, the embedded small model) and as a
follower of it (--follow), then nginx with the repository's file, its upstream names replaced by the two
servers' addresses and its listen port by a free one. Through the balancer: an edit (must reach the
editor), an Ask with the edit's version as min_version (must be answered by the follower, with the tokens
the editor gives), GetStatus (a follower's), and an edit without the token (refused). Exit 77 with a
SKIPPED line when nginx is not installed (scripts/setup installs nginx-light).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 240  # the whole test; every wait below is bounded by it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, ready, deadline):
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"lb_test: FAILED: {what} within {DEADLINE_S} s")


def port_from(path):
    try:
        with open(path) as f:
            line = f.readline().strip()
        return int(line) if line else None
    except (OSError, ValueError):
        return None


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--conf", required=True)
    args = ap.parse_args()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        print("lb_test: SKIPPED: nginx is not installed (scripts/setup installs nginx-light)")
        return 77
    deadline = time.monotonic() + DEADLINE_S
    token = "lb-test-token"
    procs = []
    with tempfile.TemporaryDirectory(prefix="moke_lb_test_") as tmp:
        try:
            env = dict(os.environ, MOKE_TOKEN=token)
            common = ["--listen", "127.0.0.1:0", "--metrics-listen", "", "--model", args.model, "--log-level", "warn"]
            procs.append(subprocess.Popen([args.server, *common, "--data-dir", f"{tmp}/editor",
                                           "--port-file", f"{tmp}/editor.port", "--snapshot-every", "0"], env=env))
            editor = wait_for("the editor started", lambda: port_from(f"{tmp}/editor.port"), deadline)
            procs.append(subprocess.Popen([args.server, *common, "--port-file", f"{tmp}/follower.port",
                                           "--follow", f"127.0.0.1:{editor}", "--follow-token", token]))
            follower = wait_for("the follower started", lambda: port_from(f"{tmp}/follower.port"), deadline)

            lb = free_port()
            with open(args.conf) as f:
                conf = f.read()
            names = set(re.findall(r"server\s+([a-z0-9-]+):50051", conf))
            if names != {"editor", "follower-1", "follower-2"}:
                sys.exit(f"lb_test: FAILED: the upstreams of {args.conf} are {sorted(names)}")
            conf = conf.replace("server editor:50051", f"server 127.0.0.1:{editor}")
            conf = re.sub(r"server follower-\d:50051", f"server 127.0.0.1:{follower}", conf)
            conf = conf.replace("listen 50051", f"listen 127.0.0.1:{lb}").replace("/tmp/moke-lb", f"{tmp}/lb")
            with open(f"{tmp}/lb.conf", "w") as f:
                f.write(conf)
            procs.append(subprocess.Popen([nginx, "-c", f"{tmp}/lb.conf", "-p", tmp, "-e", "stderr",
                                           "-g", "daemon off;"]))
            wait_for("nginx listened", lambda: accepts(lb), deadline)

            def cli(port, *words, token_arg=True, check=True):
                cmd = [args.cli, "--server", f"127.0.0.1:{port}", "--json", "--timeout", "120"]
                if token_arg:
                    cmd += ["--token", token]
                r = subprocess.run(cmd + list(words), capture_output=True, text=True,
                                   timeout=max(1, deadline - time.monotonic()))
                if check and r.returncode != 0:
                    sys.exit(f"lb_test: FAILED: moke-cli {' '.join(words)} via {port}: {r.stderr.strip()}")
                return r

            question = "Where does the wizard live?"
            edit = json.loads(cli(lb, "edit", question, "Paris").stdout)
            version = int(edit["version"])
            editor_status = json.loads(cli(editor, "status").stdout)
            if int(editor_status.get("version", 0)) != version:
                sys.exit(f"lb_test: FAILED: the edit through the balancer did not reach the editor: {editor_status}")
            via_lb = json.loads(cli(lb, "ask", question, "--min-version", str(version)).stdout)
            direct = json.loads(cli(editor, "ask", question, "--min-version", str(version)).stdout)
            if any(via_lb.get(k) != direct.get(k) for k in ("answer", "tokens", "version")):
                sys.exit(f"lb_test: FAILED: through the balancer {via_lb}, from the editor {direct}")
            status = json.loads(cli(lb, "status").stdout)
            if status.get("role") != "follower":
                sys.exit(f"lb_test: FAILED: GetStatus through the balancer is not a follower's: {status}")
            refused = cli(lb, "edit", question, "Rome", token_arg=False, check=False)
            if refused.returncode == 0:
                sys.exit("lb_test: FAILED: an edit without the token was accepted through the balancer")
            print(f"lb_test: passed (edit -> editor version {version}; ask -> follower: {via_lb.get('answer')!r}, "
                  f"same as the editor's)")
            return 0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())

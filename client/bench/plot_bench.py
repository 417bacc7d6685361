#!/usr/bin/python3
"""Draws a moke-bench run: accuracy against the number of edits, and the edit-latency distribution.

Usage: /usr/bin/python3 plot_bench.py --dir RUN_DIR [--out RUN_DIR/bench.png]

Reads RUN_DIR/results.json (its "curve": one point per --eval-every evaluation plus the final one) and
RUN_DIR/per_edit.csv (latency_s per edit). Exit codes: 0 written, 2 bad input, 3 matplotlib missing
(moke-bench then warns and goes on).
"""
import argparse
import csv
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or os.path.join(args.dir, "bench.png")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench.py: matplotlib is not installed (apt-get install python3-matplotlib)", file=sys.stderr)
        return 3
    try:
        with open(os.path.join(args.dir, "results.json"), encoding="utf-8") as f:
            results = json.load(f)
        latencies, steps = [], []
        with open(os.path.join(args.dir, "per_edit.csv"), encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                steps.append(int(row["step"]))
                latencies.append(float(row["latency_s"]))
    except (OSError, ValueError, KeyError) as e:
        print(f"plot_bench.py: {e}", file=sys.stderr)
        return 2

    stream = results.get("stream", {})
    server = results.get("server", {})
    title = (f"{stream.get('name', '?')}: {stream.get('questions', '?')} questions, {stream.get('edits', '?')} edits"
             f" — {server.get('method', '?')} on {server.get('model', '?')} ({server.get('device', '?')})")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    fig.suptitle(title)

    curve = results.get("curve") or []
    xs = [p["edits"] for p in curve]
    for key, label, style in (("rel", "Rel.", "o-"), ("gen", "Gen.", "s-"), ("loc", "Loc.", "^-"),
                              ("route", "Route", "d--")):
        ys = [p.get(key) for p in curve]
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax1.set_xlabel("edits applied")
    ax1.set_ylabel("score")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title("accuracy vs. number of edits" + ("" if len(curve) > 1 else " (final only; use --eval-every)"))
    ax1.grid(alpha=0.3)
    ax1.legend(loc="best")

    if latencies:
        ax2.hist(latencies, bins=min(30, max(5, len(latencies) // 3)), color="tab:blue", alpha=0.8)
        lat = results.get("latency_s", {})
        for key, color in (("median", "tab:orange"), ("p95", "tab:red")):
            if lat.get(key) is not None:
                ax2.axvline(lat[key], color=color, linestyle="--", label=f"{key} {lat[key]:.3f} s")
        ax2.legend(loc="best")
        ax3.plot(steps, latencies, ".", markersize=4)
    ax2.set_xlabel("edit latency (s)")
    ax2.set_ylabel("edits")
    ax2.set_title("edit latency distribution")
    ax3.set_xlabel("edit step")
    ax3.set_ylabel("latency (s)")
    ax3.set_title("edit latency over the stream")
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot_bench.py: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

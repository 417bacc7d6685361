#!/usr/bin/python3
"""Averages moke-bench runs over seeds into one Markdown table.

    client/bench/seed_table.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a `moke-bench run --out` folder (results.json, per_edit.csv), named
`<config>-<stream>` by run_matrix.sh. Runs are grouped by (config, stream) with the seed suffix
(`-s0`, `s1`, ...) removed from both names, and every column is printed as mean +- sample standard
deviation over the group (n = number of runs); a column a run does not have (an older results.json, or
a stream without those prompts) is "n/a". The latency columns are the server's own apply time
(per_edit.csv `apply_s`), p95 over the window of edits 1-20 ("at edit 10") and 181-200 ("at edit 200")
and their ratio, so that a stream's growth in edit cost shows up without the client's queueing.
Standard library only.
"""
import csv
import json
import os
import re
import statistics
import sys

SEED = re.compile(r"-?s\d+$")


def p95(values):
    v = sorted(values)
    if not v:
        return None
    pos = 0.95 * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def run_row(path):
    r = json.load(open(os.path.join(path, "results.json")))
    m = r["metrics"]
    apply_s = []
    with open(os.path.join(path, "per_edit.csv")) as f:
        for row in csv.DictReader(f):
            apply_s.append(float(row["apply_s"]))
    early = p95(apply_s[0:20])
    late = p95(apply_s[180:200]) if len(apply_s) >= 200 else None
    return {
        "Rel.": m["rel"], "Gen.": m.get("gen"), "Loc.": m.get("loc"), "Route": m.get("route"),
        "Route para.": m.get("route_rephrase"), "EM": m.get("em"),
        "Hard loc.": m.get("hard_loc"), "Rel. spec.": m.get("rel_spec"), "Gen. reworded": m.get("gen_reworded"),
        "Aliases": m.get("aliases"), "EM free": m.get("em_free"), "Stop EOS": m.get("stop_eos"),
        "p95 @10 (s)": early, "p95 @200 (s)": late,
        "ratio": (late / early) if (late and early) else None,
        "complete": r.get("complete", False),
    }


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def main(dirs):
    groups = {}
    for d in dirs:
        name = os.path.basename(os.path.normpath(d))
        config, _, stream = name.partition("-")
        # config names carry no '-'; the stream is the rest (e.g. zsre-slke-25x4-s0).
        key = (SEED.sub("", config), SEED.sub("", stream))
        groups.setdefault(key, []).append(run_row(d))
    cols = ["Rel.", "Gen.", "Loc.", "Route", "Route para.", "EM", "Hard loc.", "Rel. spec.", "Gen. reworded",
            "Aliases", "EM free", "Stop EOS", "p95 @10 (s)", "p95 @200 (s)", "ratio"]
    print("| config | stream | n | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for (config, stream), rows in groups.items():
        n = sum(1 for r in rows if r["complete"])
        print(f"| {config} | {stream} | {n} | " + " | ".join(fmt([r[c] for r in rows]) for c in cols) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

#!/usr/bin/python3
"""Re-edits worded otherwise (issue 14: "a re-edit worded as a paraphrase supersedes the old answer").

ZsRE MEND restates one fact in other words with other counterfactual answers: records 14, 15, 17, 18 and
19 all ask who made USS Leedstown (APA-56) (true answer "Bethlehem Steel"), each worded its own way. This
probe takes the first FACTS facts of the file that are restated at least once (same subject, a true answer
in common: moke-bench build-stream --one-per-fact's rule), and for each one sends, in file order, its first
wording with its answer, then every restatement with its own answer (EditFact with the record's subject).
Afterwards every wording of the fact must get the last answer: the server must have seen each
restatement as the same fact (EditFactResponse.superseded_edit_id) and replaced the answer.

Prints, over all facts: restatements that superseded, and the wordings (first and restated) whose Ask
starts with the last answer.

With --other-relations (a KnowEdit file: ZsRE-test-all.json or WikiCF's test_cf.json) it then checks the
opposite: for the first FACTS records with a Relation_Specificity prompt (the same subject, another
relation), it edits the record's prompt, asks it, then edits that other relation with another answer (the
next record's). The second edit must not supersede the first (superseded_edit_id 0), and a prompt answered
right after its edit must keep its answer. (KnowEdit ZsRE's Relation_Specificity sometimes asks the edited
relation itself, "The mother of X is" for "Who is X's mother?": there a supersession is right.)

Needs a running moke-server on 127.0.0.1 (no token, fresh: each part edits many facts) and the generated
Python stubs (build/tests/server/py).

  client/bench/reedit_probe.py --server 127.0.0.1:PORT --data ../shared/data/zsre/zsre_mend_eval_portability_gpt4.json
  client/bench/reedit_probe.py --server 127.0.0.1:PORT --other-relations ../shared/data/wikicf/test_cf.json
"""
import argparse
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "build", "tests", "server", "py"))
import grpc  # noqa: E402
from moke.v1 import moke_pb2, moke_pb2_grpc  # noqa: E402


def norm(s):
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in s).split())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--data", help="ZsRE MEND: restated facts")
    ap.add_argument("--other-relations", help="KnowEdit ZsRE or WikiCF: the same subject, another relation")
    ap.add_argument("--facts", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    a = ap.parse_args()
    stub = moke_pb2_grpc.KnowledgeEditorStub(grpc.insecure_channel(a.server))
    if a.data:
        restatements(stub, json.load(open(a.data)), a)
    if a.other_relations:
        other_relations(stub, json.load(open(a.other_relations)), a)


def restatements(stub, records, a):
    owner, groups = {}, []
    for i, r in enumerate(records):
        keys = [norm(r["subject"]) + "\x1f" + norm(t) for t in r.get("answers", []) if norm(t)]
        hit = next((owner[k] for k in keys if k in owner), None)
        if hit is None:
            for k in keys:
                owner[k] = len(groups)
            groups.append([i])
        else:
            groups[hit].append(i)
    restated = [g for g in groups if len(g) > 1][: a.facts]
    superseded = sent = right = wordings = 0
    for g in restated:
        for j, i in enumerate(g):
            r = records[i]
            resp = stub.EditFact(moke_pb2.EditFactRequest(question=r["src"], answer=r["alt"], subject=r["subject"],
                                                          request_id=f"reedit-probe:{i}"))
            if j > 0:
                sent += 1
                superseded += resp.superseded_edit_id != 0
        last = records[g[-1]]["alt"]
        for i in g:
            ans = stub.Ask(moke_pb2.AskRequest(question=records[i]["src"], max_new_tokens=a.max_new_tokens)).answer
            wordings += 1
            ok = ans.strip().startswith(last.strip())
            right += ok
            if not ok:
                print(f"record {i}: {records[i]['src']!r} -> {ans!r}, last answer {last!r}", file=sys.stderr)
    print(f"facts restated: {len(restated)} (records {restated[0][0]}..{restated[-1][-1]})")
    print(f"restatements that superseded the held answer: {superseded}/{sent} = {superseded / sent:.3f}")
    print(f"wordings answered with the last answer: {right}/{wordings} = {right / wordings:.3f}")


def other_relations(stub, records, a):
    picked = [r for r in records if (r.get("locality") or {}).get("Relation_Specificity")][: a.facts]
    kept = held = answered = 0
    for n, r in enumerate(picked):
        other = r["locality"]["Relation_Specificity"][0]["prompt"]
        decoy = picked[(n + 1) % len(picked)]["target_new"]
        want = r["target_new"].strip()
        first = stub.EditFact(moke_pb2.EditFactRequest(question=r["prompt"], answer=r["target_new"],
                                                       subject=r["subject"], request_id=f"other-probe:{n}:a"))
        before = stub.Ask(moke_pb2.AskRequest(question=r["prompt"], max_new_tokens=a.max_new_tokens)).answer
        resp = stub.EditFact(moke_pb2.EditFactRequest(question=other, answer=decoy, subject=r["subject"],
                                                      request_id=f"other-probe:{n}:b"))
        kept += resp.superseded_edit_id == 0
        if resp.superseded_edit_id != 0:
            print(f"superseded: {r['prompt']!r} by {other!r}", file=sys.stderr)
        if not before.strip().startswith(want):
            continue  # not answered even before: nothing to keep
        held += 1
        asked = stub.Ask(moke_pb2.AskRequest(question=r["prompt"], max_new_tokens=a.max_new_tokens))
        if asked.answer.strip().startswith(want):
            answered += 1
        else:
            print(f"lost: {r['prompt']!r} -> {asked.answer!r} (expert {asked.route.expert}), held {want!r} "
                  f"(expert {first.expert}); other {other!r} -> {decoy!r} (expert {resp.expert})", file=sys.stderr)
    print(f"other relations of a held subject that did not supersede it: {kept}/{len(picked)} = {kept / len(picked):.3f}")
    print(f"held facts (answered right after their edit) still answered after the other relation's edit: "
          f"{answered}/{held} = {answered / max(held, 1):.3f}")


if __name__ == "__main__":
    main()

"""Stratified random samples of an `audit` for judging by hand, and precision from the judgements.

    python bench/audit_sample.py draw AUDIT.json --cache DIR --seed S [--per-rule 5] [--passes 30] [--rules 10]
        [--exclude JUDGED.json] > sample.json
    python bench/audit_sample.py score JUDGED.json [--round R]
    python bench/audit_sample.py diff BEFORE.json AFTER.json [--list]

`draw` takes an audit's JSON output (`cli.py audit --format json`) and the cache it wrote (the full JSON contract of
each folder tree), and draws, without replacement and skipping folder trees already judged: PER_RULE error findings
of each of the RULES most frequent error rules (one finding per folder tree, that rule's first) and PASSES folders
whose verdict is pass. `score` prints, per rule and for the PASS verdicts, how many judged findings were right,
with the sample size. A judgement is a fact: PR, commit, folder, rule, correct, line, a one-sentence reason.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path


def _contract(cache: Path, key: str, tree: str) -> dict:
    return json.loads((cache / key / f"{tree}.json").read_text(encoding="utf-8"))


def draw(audit: dict, cache: Path, seed: int, per_rule: int, passes: int, top: int, judged: set[str]) -> list[dict]:
    """The sample: error findings of the most frequent error rules, then PASS folders; one row per folder tree."""
    rng = random.Random(seed)
    by_tree: dict[str, dict] = {}
    for row in audit["rows"]:
        by_tree.setdefault(row["tree"], row)
    rule_trees: dict[str, list[str]] = defaultdict(list)
    for tree, row in sorted(by_tree.items()):
        for rule in row["error_rules"]:
            rule_trees[rule].append(tree)
    frequent = [rule for rule, _n in Counter({r: len(t) for r, t in rule_trees.items()}).most_common(top)]
    sample = []
    for rule in frequent:
        pool = [t for t in rule_trees[rule] if f"{t}:{rule}" not in judged]
        for tree in rng.sample(pool, min(per_rule, len(pool))):
            row = by_tree[tree]
            finding = next(f for f in _contract(cache, audit["harness_key"], tree)["findings"]
                           if f["rule"] == rule and f["severity"] == "error")
            sample.append({"kind": "error", "rule": rule, "pr": row["pr"], "commit": row["commit"],
                           "folder": row["folder"], "tree": tree, "file": finding.get("file"),
                           "line": finding.get("line"), "message": finding["message"],
                           "evidence": finding.get("evidence", [])[:6]})
    pass_pool = [t for t, row in sorted(by_tree.items()) if row["verdict"] == "pass" and f"{t}:PASS" not in judged]
    for tree in rng.sample(pass_pool, min(passes, len(pass_pool))):
        row = by_tree[tree]
        warnings = [{"rule": f["rule"], "file": f.get("file"), "line": f.get("line"), "message": f["message"]}
                    for f in _contract(cache, audit["harness_key"], tree)["findings"]]
        sample.append({"kind": "pass", "rule": "PASS", "pr": row["pr"], "commit": row["commit"],
                       "folder": row["folder"], "tree": tree, "warnings": warnings[:12]})
    return sample


def score(judgements: list[dict], round_id: str | None) -> str:
    """Per rule (and PASS, and errors an earlier version raised and this one dropped): right / judged."""
    rows = [j for j in judgements if round_id is None or j.get("round") == round_id]
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    undecided = 0
    for j in rows:
        if j["correct"] is None:
            undecided += 1  # a judge could not decide: left out of the shares, counted below
            continue
        key = f"dropped {j['rule']}" if j.get("kind") == "dropped" else j["rule"]
        tally[key][0] += bool(j["correct"])
        tally[key][1] += 1
    lines = [f"{'rule':32} right/judged  share"]
    for rule, (right, n) in sorted(tally.items(), key=lambda kv: (kv[0] == "PASS", kv[0].startswith("dropped"),
                                                                     kv[0])):
        lines.append(f"{rule:32} {right:>5}/{n:<6} {right / n:6.0%}")
    if undecided:
        lines.append(f"{'undecided (not counted)':32} {undecided}")
    errors = [v for k, v in tally.items() if k != "PASS" and not k.startswith("dropped")]
    if errors:
        right, n = sum(v[0] for v in errors), sum(v[1] for v in errors)
        lines.append(f"{'all error findings':32} {right:>5}/{n:<6} {right / n:6.0%}")
    return "\n".join(lines)


def diff(before: dict, after: dict, listing: bool) -> str:
    """Verdict changes between two audits, per distinct folder (by PR and folder, since trees are the same)."""
    def table(audit: dict) -> dict[tuple[str, str], dict]:
        return {(r["pr"], r["folder"]): r for r in audit["rows"]}

    old, new = table(before), table(after)
    moves = Counter((old[k]["verdict"], new[k]["verdict"]) for k in old.keys() & new.keys())
    lines = [(f"rows in both: {len(old.keys() & new.keys())}; only before: {len(old.keys() - new.keys())}; "
              f"only after: {len(new.keys() - old.keys())}")]
    lines += [f"  {a:>5} -> {b:<5} {n}" for (a, b), n in sorted(moves.items())]
    rules_old = Counter(rule for r in old.values() for rule in r["error_rules"])
    rules_new = Counter(rule for r in new.values() for rule in r["error_rules"])
    lines.append("error rows per rule (before -> after):")
    lines += [f"  {rule:28} {rules_old[rule]:>5} -> {rules_new[rule]:<5}" for rule in sorted(rules_old | rules_new)]
    if listing:
        for key in sorted(old.keys() & new.keys(), key=lambda k: (int(k[0]) if k[0].isdigit() else 0, k[1])):
            a, b = old[key], new[key]
            if a["verdict"] != b["verdict"] or a["error_rules"] != b["error_rules"]:
                lines.append(f"#{key[0]} {key[1]}: {a['verdict']} {a['error_rules']} -> {b['verdict']} "
                             f"{b['error_rules']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("audit", type=Path)
    d.add_argument("--cache", type=Path, required=True)
    d.add_argument("--seed", type=int, required=True)
    d.add_argument("--per-rule", type=int, default=5)
    d.add_argument("--passes", type=int, default=30)
    d.add_argument("--rules", type=int, default=10)
    d.add_argument("--exclude", type=Path, default=None, help="judgements already made (their trees are skipped)")
    f = sub.add_parser("diff")
    f.add_argument("before", type=Path)
    f.add_argument("after", type=Path)
    f.add_argument("--list", action="store_true", help="every row whose verdict or error rules changed")
    s = sub.add_parser("score")
    s.add_argument("judged", type=Path)
    s.add_argument("--round", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "draw":
        judged = set()
        if args.exclude and args.exclude.exists():
            judged = {f"{j['tree']}:{j['rule']}" for j in json.loads(args.exclude.read_text()) if j.get("tree")}
        audit = json.loads(args.audit.read_text(encoding="utf-8"))
        json.dump(draw(audit, args.cache, args.seed, args.per_rule, args.passes, args.rules, judged), sys.stdout,
                  indent=1)
        print()
    elif args.cmd == "diff":
        print(diff(json.loads(args.before.read_text()), json.loads(args.after.read_text()), args.list))
    else:
        print(score(json.loads(args.judged.read_text(encoding="utf-8")), args.round))
    return 0


if __name__ == "__main__":
    sys.exit(main())

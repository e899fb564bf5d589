"""Run the static rules over every labelled submission of the dev corpus and print confusion tables and timings.

Usage: python -m bench.rules_corpus [--corpus PATH] [--rules ID,ID] [--main]
Reads each entry's file at entry["commit"]:entry["path"] from the git repository named by $PG_REPO (default: the
local openai/parameter-golf mirror); self-extracting shims are decoded with harness.submission.shim. With
--main it also runs over every records/*/train_gpt.py merged at main (all legal: no error expected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from harness.submission.shim import decode_shim
from rules.engine import SourceUnit, analyse, implemented_rule_ids
from rules.finding import Finding

DEFAULT_REPO = "/work/.mirror/openai+parameter-golf/repo"
DEFAULT_CORPUS = "/work/shared/corpus/dev.json"
EXTRA_REPOS = {"resouer/parameter-golf": "/work/.mirror/resouer+parameter-golf/repo"}


def git_show(repo: str, commit: str, path: str) -> str | None:
    done = subprocess.run(["git", "-C", repo, "show", f"{commit}:{path}"], capture_output=True)
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def units_for(text: str, path: str) -> list[SourceUnit]:
    """The shipped text, plus the decoded payload when the file is a self-extracting shim."""
    units = [SourceUnit(path, text)]
    decoded = decode_shim(text, path)
    if decoded.text:
        units.append(SourceUnit(path, decoded.text, "decoded"))
    return units


def context_evidence(repo: str, commit: str, path: str, names: list[str]) -> tuple[object, list]:
    """What `check` also reads next to the script: run logs (which flag-guarded paths ran) and launch commands in
    the README (a validation shard linked in as training data). Returns (log hints, TRAIN-ON-VAL text hits)."""
    from harness.check.static_rules import log_hints_from
    from harness.submission.logs import parse_log
    from rules.train_on_val import scan_text

    folder = str(Path(path).parent)
    runs, text_hits = [], []
    for name in names:
        text = git_show(repo, commit, f"{folder}/{name}")
        if text is None:
            continue
        if name.endswith((".log", ".txt")):
            runs.append(parse_log(text, name))
        elif name == "README.md" or name.endswith(".sh"):
            text_hits += scan_text(name, text)
    return log_hints_from(runs), text_hits


def run_entry(repo: str, commit: str, path: str, rule_ids: set[str],
              context: list[str] | None = None) -> tuple[list, float] | None:
    text = git_show(repo, commit, path)
    if text is None:
        return None
    hints, text_hits = context_evidence(repo, commit, path, context) if context else (None, [])
    start = time.perf_counter()
    result = analyse(units_for(text, path), hints)
    seconds = time.perf_counter() - start
    findings = [f for f in result.findings if f.rule in rule_ids]
    if text_hits and "TRAIN-ON-VAL" in rule_ids:
        findings += [Finding(rule="TRAIN-ON-VAL", severity="error", message=note, file="README.md", line=line)
                     for line, note in text_hits]
    return findings, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--rules", default="", help="comma-separated rule IDs (default: all implemented)")
    parser.add_argument("--main", action="store_true", help="also check every merged record at main")
    parser.add_argument("--code-only", action="store_true",
                        help="ignore the entry's logs and README (by default they are read, as `check` reads them)")
    args = parser.parse_args(argv)
    repo = os.environ.get("PG_REPO") or (DEFAULT_REPO if Path(DEFAULT_REPO).exists() else "")
    if not repo:
        print("skipped: no parameter-golf git repository (set PG_REPO)")
        return 0
    rule_ids = set(args.rules.split(",")) if args.rules else set(implemented_rule_ids())
    entries = json.loads(Path(args.corpus).read_text())
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    times: list[float] = []
    print(f"{'entry':45} {'label':8} {'expected':40} {'errors':40} {'warnings':30} {'s':>6}")
    for entry in entries:
        entry_repo = EXTRA_REPOS.get(entry.get("source_repo", ""), repo)
        got = run_entry(entry_repo, entry["commit"], entry["path"], rule_ids,
                        None if args.code_only else entry.get("context_files"))
        if got is None:
            print(f"{entry['id']:45} unreadable at {entry['commit'][:10]}:{entry['path']}")
            continue
        violations, seconds = got
        times.append(seconds)
        errors = sorted({v.rule for v in violations if v.severity == "error"})
        warnings = sorted({v.rule for v in violations if v.severity == "warning"} - set(errors))
        expected = sorted(set(entry["rules"]) & rule_ids)
        for rule in rule_ids:
            hit = rule in errors or rule in warnings
            want = rule in expected
            cell = ("TP" if hit else "FN") if want else ("FP" if rule in errors else "warn" if hit else "TN")
            table[rule][cell] += 1
        mark = "" if set(expected) <= set(errors) | set(warnings) and (entry["label"] == "illegal" or not errors) \
            else "  <-- MISMATCH"
        print(f"{entry['id']:45} {entry['label']:8} {','.join(expected) or '-':40} {','.join(errors) or '-':40} "
              f"{','.join(warnings) or '-':30} {seconds:6.3f}{mark}")
    print("\nper rule (TP/FN = labelled rule found or missed; FP = error on an entry not labelled with it):")
    for rule in sorted(table):
        print(f"  {rule:22} " + " ".join(f"{k}={table[rule][k]}" for k in ("TP", "FN", "FP", "warn", "TN")))
    if times:
        print(f"time per file: mean {sum(times) / len(times):.3f}s, max {max(times):.3f}s over {len(times)} files")
    if args.main:
        check_main(repo, rule_ids)
    return 0


def check_main(repo: str, rule_ids: set[str]) -> None:
    """Every merged records/*/*/train_gpt.py at main: list any error from the given rules."""
    listing = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", "main", "records"],
                             capture_output=True, text=True).stdout.split()
    scripts = [p for p in listing if p.endswith("/train_gpt.py")]
    bad = 0
    for path in scripts:
        got = run_entry(repo, "main", path, rule_ids)
        if got is None:
            continue
        errors = [v for v in got[0] if v.severity == "error"]
        if errors:
            bad += 1
            print(f"main ERROR {path}: " + "; ".join(f"{v.rule}@{v.line}" for v in errors))
    print(f"merged records at main: {len(scripts)} scripts, {bad} with an error from {sorted(rule_ids)}")


if __name__ == "__main__":
    sys.exit(main())

"""Bench: parse every record folder's logs and submission.json, compare claims with logs, print a tally.

Usage: PG_REPO=/path/to/parameter-golf (a git repository, read at REF, default main) or PG_REPO=/path/to/records
(an extracted folder) python bench/claims_records.py. Skips with a message when PG_REPO is not set or absent.
The expected tally on main @ 4908dc46f is in ../shared/docs/challenge-facts.md §12.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.records_source import MAIN_REF, find_repo, materialize_records  # noqa: E402
from harness.check.claims import check_claims  # noqa: E402
from harness.submission.folder import load_submission  # noqa: E402
from harness.submission.logs import load_logs  # noqa: E402
from harness.submission.manifest import load_claims  # noqa: E402
from harness.verdict import Report  # noqa: E402

MATCH_KINDS = {"all", "pre_rounded", "subset", "single", "non_final"}  # pre_quant_step counts as a mismatch


def main() -> int:
    repo = find_repo()
    if repo is None:
        print("skipped: set PG_REPO to a parameter-golf git repository or an extracted records/ folder")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = materialize_records(repo, Path(tmp), os.environ.get("PG_REF", MAIN_REF))
        folders = sorted(p for track in root.iterdir() if track.is_dir() for p in track.iterdir() if p.is_dir())
        tally: collections.Counter[str] = collections.Counter()
        tags: collections.Counter[str] = collections.Counter()
        crashes = 0
        t0 = time.perf_counter()
        print(f"{'#':>3} {'track':5} {'result':11} {'claim':>11} {'logs':>5}  folder / detail")
        for i, folder in enumerate(folders, 1):
            try:
                sub = load_submission(folder)
                report = Report(str(folder))
                claims = load_claims(sub, report)
                logs = load_logs(sub)
                result = check_claims(claims, logs, report)["val_bpb"]
            except Exception as exc:  # the bench reports crashes instead of stopping
                crashes += 1
                print(f"{i:>3} CRASH {folder.name}: {type(exc).__name__}: {exc}")
                continue
            finals = [r for r in logs if r.final is not None]
            tags.update(r.final.tag for r in finals)
            bucket = "match" if result.kind in MATCH_KINDS else ("mismatch" if result.kind == "pre_quant_step" else result.kind)
            tally[bucket] += 1
            tally[f"  {result.kind}"] += 1
            track = "R" if "10min" in folder.parent.name else "N"
            print(f"{i:>3} {track:5} {result.kind:11} {claims.val_bpb_text or '-':>11} {len(finals):>5}  "
                  f"{folder.name[:60]}  {result.detail[:90]}")
        elapsed = time.perf_counter() - t0
    print(f"\nfolders {len(folders)}, crashes {crashes}, {elapsed:.1f}s")
    print("tally:", ", ".join(f"{k.strip()} {v}" for k, v in tally.items() if not k.startswith(" ")))
    print("by kind:", ", ".join(f"{k.strip()} {v}" for k, v in sorted(tally.items()) if k.startswith(" ")))
    print(f"final tags ({len(tags)}):", ", ".join(f"{t} {n}" for t, n in tags.most_common()))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

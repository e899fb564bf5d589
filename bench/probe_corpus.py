"""Run `probe` over the labelled real submissions of the dev corpus and say, per file, what could be probed.

  python bench/probe_corpus.py [--corpus /work/shared/corpus/dev.json] [--mirror REPO.git] [--timeout 120]

Each record's folder is extracted from the local mirror of openai/parameter-golf (git archive at its ref) into a
temporary folder, probed at the tiny CPU configuration, and listed with its label, the verdict and either the rule IDs
found or the reason it could not be probed. Nothing is written into the mirror or the project.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.run.probe import ProbeOptions, probe_path  # noqa: E402

MIRROR = "/work/.mirror/openai+parameter-golf/repo"


def extract(mirror: str, ref: str, folder: str, dest: Path) -> Path:
    """The record folder at `ref`, unpacked under `dest`."""
    archive = subprocess.run(["git", "-C", mirror, "archive", ref, folder], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / folder


def short_reason(reasons: list[str]) -> str:
    text = reasons[0] if reasons else ""
    for prefix in ("the script does not run at probe scale on CPU (CPU compatibility layer on): ",
                   "the script does not run at probe scale on CPU: "):
        text = text.replace(prefix, "")
    return text[:110]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="/work/shared/corpus/dev.json")
    ap.add_argument("--mirror", default=MIRROR)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--only", default="", help="comma-separated record ids")
    args = ap.parse_args()
    records = json.loads(Path(args.corpus).read_text())
    if args.only:
        records = [r for r in records if r["id"] in args.only.split(",")]
    tally = collections.Counter()
    for rec in records:
        ref = rec.get("commit") or rec["git_ref"]
        with tempfile.TemporaryDirectory(prefix="pgolf-corpus-") as tmp:
            try:
                folder = extract(args.mirror, ref, str(Path(rec["path"]).parent), Path(tmp))
            except subprocess.CalledProcessError:
                print(f"{rec['id']:<44} {rec['label']:<8} skipped    not in the mirror at {ref[:12]}")
                continue
            started = time.monotonic()
            report = probe_path(folder, ProbeOptions(timeout=args.timeout))
            seconds = time.monotonic() - started
        found = sorted({f.rule for f in report.errors})
        detail = ",".join(found) if found else ("-" if report.verdict == "pass" else short_reason(report.could_not_check))
        not_run = [name for name, p in report.facts.get("probes", {}).items() if not p.get("ran")]
        if report.verdict != "error" and not_run:  # a pass is only as strong as the probes that ran
            detail += f"  [not run: {', '.join(not_run)}]"
        tally[report.verdict] += 1
        print(f"{rec['id']:<44} {rec['label']:<8} {report.verdict:<6} {seconds:5.1f}s  {detail}", flush=True)
    print(f"\n{sum(tally.values())} records: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

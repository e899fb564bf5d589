"""`check` over every merged record folder of openai/parameter-golf (both tracks), as a Markdown table.

Prints (or writes with --out) one row per folder: verdict, error and warning counts, and every error finding with
its rule and message, so that each error can be explained in docs/records-verdicts.md. Also counts crashes
(could-not-check entries caused by internal errors), which must be zero.

    PG_REPO=/path/to/parameter-golf python bench/records_verdicts.py --out docs/records-verdicts.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records_source import MAIN_REF, find_repo, materialize_records  # noqa: E402
from harness.check.pipeline import check_path  # noqa: E402


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run(records: Path) -> tuple[str, Counter, int, float]:
    rows, verdicts, crashes = [], Counter(), 0
    started = time.perf_counter()
    for track in sorted(p for p in records.iterdir() if p.is_dir()):
        for folder in sorted(p for p in track.iterdir() if p.is_dir()):
            report = check_path(folder)
            verdicts[report.verdict] += 1
            internal = [c for c in report.could_not_check if "internal error" in c]
            crashes += len(internal)
            errors = report.errors
            warnings = [f for f in report.findings if f.severity == "warning"]
            detail = "<br>".join(_cell(f"{f.rule}: {f.message}" + (f" ({f.file}:{f.line})" if f.file else ""))
                                 for f in errors[:6])
            if len(errors) > 6:
                detail += f"<br>… {len(errors) - 6} more"
            if report.could_not_check:
                detail += "<br>could not check: " + _cell("; ".join(report.could_not_check))
            rows.append(f"| {track.name.replace('track_', '')} | {_cell(folder.name)} | {report.verdict} | "
                        f"{len(errors)} | {len(warnings)} | {detail} |")
    elapsed = time.perf_counter() - started
    header = ["| track | folder | verdict | errors | warnings | error findings |", "|---|---|---|---|---|---|"]
    return "\n".join(header + rows), verdicts, crashes, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the table into this Markdown file")
    args = parser.parse_args()
    repo = find_repo()
    if repo is None:
        print("skipped: no local openai/parameter-golf copy (set PG_REPO)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        table, verdicts, crashes, elapsed = run(materialize_records(repo, Path(tmp)))
    summary = (f"{sum(verdicts.values())} folders at {MAIN_REF}: {dict(verdicts)}; internal errors: {crashes}; "
               f"{elapsed:.1f} s in one process")
    print(summary)
    if args.out:
        text = args.out.read_text() if args.out.exists() else ""
        marker = "<!-- table -->"
        body = f"{marker}\n{summary}\n\n{table}\n"
        args.out.write_text(text.split(marker)[0] + body if marker in text else text + "\n" + body)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

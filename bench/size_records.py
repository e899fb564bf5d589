"""load_code + check_size over every record folder of openai/parameter-golf: shims decoded, time, cap verdicts.

Prints how many entry scripts are shims or exec(open) loaders, the time load_code takes per folder, and every
folder whose recomputed per-seed total is over the 16,000,000-byte cap, split by why (over as shipped and as
logged; over only as shipped with wrapper accounting saving it; over only once uncounted code is added).

    PG_REPO=/path/to/parameter-golf python bench/size_records.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records_source import find_repo, materialize_records  # noqa: E402
from harness.challenge import ARTIFACT_CAP_BYTES  # noqa: E402
from harness.check.size import check_size  # noqa: E402
from harness.submission.code import load_code  # noqa: E402
from harness.submission.folder import load_submission  # noqa: E402
from harness.submission.logs import load_logs  # noqa: E402
from harness.verdict import Report  # noqa: E402


def measure(records: Path) -> int:
    shims, stubs, times, lines = 0, 0, [], []
    for folder in sorted(p for track in records.iterdir() if track.is_dir() for p in track.iterdir() if p.is_dir()):
        sub = load_submission(folder)
        started = time.perf_counter()
        code = load_code(sub)
        times.append((time.perf_counter() - started, folder.name))
        shims += any(layer.depth == 0 for layer in code.shim_layers)
        stubs += any(u.origin == "exec-open" for u in code.units)
        report = Report(str(folder))
        check_size(sub, code, load_logs(sub), report)
        rows = report.facts["size"]["seeds"]
        over = [r for r in rows if r.get("verdict") == "over"]
        wrapper = [r for r in rows if r.get("verdict") == "wrapper"]
        if over or wrapper:
            worst = max(over or wrapper, key=lambda r: r["shipped_total"])
            kind = "wrapper only" if not over else "OVER"
            extra = sum(code.extra_files.values())
            lines.append(f"  {kind:12} {folder.parent.name[6:12]}/{folder.name[:58]:58} shipped {worst['shipped_total']:>11,}"
                         f" (+{worst['shipped_total'] - ARTIFACT_CAP_BYTES:,}) logged {worst['logged_total'] or 0:>11,}"
                         f" wrapper {worst.get('wrapper_total') or 0:>11,} extra code {extra:,} B")
        for problem in code.problems:
            if "no train_gpt.py" not in problem:
                lines.append(f"  problem      {folder.name[:58]}: {problem}")
    secs = [t for t, _ in times]
    slowest = max(times)
    print(f"folders: {len(times)}; shim entry scripts decoded: {shims}; exec(open) loaders: {stubs}")
    print(f"load_code per folder: median {statistics.median(secs) * 1000:.0f} ms, mean {statistics.mean(secs) * 1000:.0f}"
          f" ms, max {slowest[0] * 1000:.0f} ms ({slowest[1]}), total {sum(secs):.2f} s")
    print("over the cap as shipped (per worst seed):")
    print("\n".join(lines) or "  none")
    return 0


def main() -> int:
    repo = find_repo()
    if repo is None:
        print("skipped: set PG_REPO to an openai/parameter-golf clone (or a folder holding records/)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        return measure(materialize_records(repo, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())

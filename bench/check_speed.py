"""Speed of `check`, as ratios against a baseline measured in the same run.

1. Whole-process `python cli.py check` on the 1,898-line 2026-03-23 LegalTTT record, median of N runs, against a bare
   Python process that only stdlib-parses the same file (target: check <= 0.6 s median on a 2-core machine).
2. `check` over every merged record folder at main, in one process (target: < 30 s in total).

Needs a local copy of openai/parameter-golf: PG_REPO=path to a git repository (bare is fine) or to a folder that
holds records/. Skips with a message when there is none.

    PG_REPO=/path/to/parameter-golf python bench/check_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records_source import find_repo, materialize_records  # noqa: E402

LEGAL_TTT = "records/track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon"


def _time(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return times


def bench_one(records: Path, runs: int) -> None:
    folder = records.parent / LEGAL_TTT
    script = folder / "train_gpt.py"
    lines = len(script.read_text().splitlines())
    bare = _time([sys.executable, "-c", f"import ast; ast.parse(open({str(script)!r}).read())"], runs)
    check = _time([sys.executable, "cli.py", "check", str(folder), "--format", "json"], runs)
    b, c = statistics.median(bare), statistics.median(check)
    print(f"whole-process check, {lines}-line LegalTTT record, median of {runs}:")
    print(f"  bare python + ast.parse : {b:.3f} s")
    print(f"  python cli.py check     : {c:.3f} s   (target <= 0.600 s: {'ok' if c <= 0.6 else 'OVER'})")
    print(f"  ratio check / bare      : {c / b:.2f}x")


def bench_all(records: Path) -> None:
    from harness.check.pipeline import check_path

    folders = sorted(p for track in records.iterdir() if track.is_dir() for p in track.iterdir() if p.is_dir())
    started = time.perf_counter()
    verdicts: dict[str, int] = {}
    for folder in folders:
        verdict = check_path(folder).verdict
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    elapsed = time.perf_counter() - started
    print(f"check over all {len(folders)} merged record folders, one process: {elapsed:.1f} s "
          f"(target < 30 s: {'ok' if elapsed < 30 else 'OVER'})")
    print(f"  verdicts: {verdicts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    repo = find_repo()
    if repo is None:
        print("skipped: no local openai/parameter-golf copy (set PG_REPO)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        records = materialize_records(repo, Path(tmp))
        bench_one(records, args.runs)
        bench_all(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The four submissions this project started from (../shared/seeds) and the verdicts maintainers reached.

* PR #397 (DynamicEval + TTT): its `ttt_adapt` trains on validation tokens before they are scored -> TTT-PREEVAL-VAL;
  its dynamic evaluation (score, then step) is legal.
* PR #455 (TightSWA + TTT): pre-quant TTT on val_tokens -> TTT-PREEVAL-VAL.
* resouer PR #6 "Discriminative TTT" (despite its "no eval-time adaptation" claim) -> TTT-PREEVAL-VAL.
* PR #473 (Legal score-first TTT, 1.1214, 3 seeds): no causality or data-access error; against its day's SOTA
  (PR #374's folder) it does not beat the record by 0.005 nats at p < 0.01 -> SIGNIFICANCE.

Reads the folders from local git copies: PG_REPO (openai/parameter-golf with refs/pull/*/head) and PG_RESOUER_REPO
(resouer/parameter-golf); skips what is missing. Prints one line per submission: expected, found, OK or MISMATCH.

    PG_REPO=/path/to/parameter-golf python bench/seed_verdicts.py
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records_source import find_repo  # noqa: E402
from harness.check.pipeline import CheckOptions, check_path  # noqa: E402

CAUSALITY_AND_DATA = {"TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "TEMP-CALIB-ON-VAL",
                      "SLOT-SCORED-TARGETS", "NGRAM-TARGET-IN-KEY", "NGRAM-GATE-ON-TARGET", "BYTE-MIXTURE-C2",
                      "TRAIN-ON-VAL", "PAID-PREFIX", "GPTQ-CALIB-VAL", "TRAIN-DATA-AT-EVAL", "NETWORK-AT-EVAL"}
RESOUER_DEFAULT = "/work/.mirror/resouer+parameter-golf/repo"


def _folder(repo: Path, ref: str, base: str | None, dest: Path) -> Path | None:
    """Extract the records/ folder that REF adds (relative to its merge base with BASE) into DEST."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)

    if git("rev-parse", "--verify", ref).returncode != 0:
        return None
    merge_base = git("merge-base", ref, base).stdout.decode().strip() if base else f"{ref}~1"
    names = git("diff", "--name-only", merge_base, ref).stdout.decode().splitlines()
    folders = sorted({str(Path(n).parent) for n in names if n.startswith("records/") and n.count("/") >= 3})
    if not folders:
        return None
    archive = git("archive", ref, folders[0]).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / folders[0]


def main() -> int:
    repo = find_repo()
    resouer = Path(os.environ.get("PG_RESOUER_REPO", RESOUER_DEFAULT))
    if repo is None:
        print("skipped: no local openai/parameter-golf copy (set PG_REPO)")
        return 0
    mismatches = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = _folder(repo, "refs/pull/374/head", "4908dc46f", tmp / "374")
        cases = [
            ("PR #397", _folder(repo, "refs/pull/397/head", "4908dc46f", tmp / "397"), {"TTT-PREEVAL-VAL"}, None),
            ("PR #455", _folder(repo, "refs/pull/455/head", "4908dc46f", tmp / "455"), {"TTT-PREEVAL-VAL"}, None),
            ("resouer #6", _folder(resouer, "submission/discriminative-ttt", None, tmp / "r6")
             if resouer.exists() else None, {"TTT-PREEVAL-VAL"}, None),
            ("PR #473", _folder(repo, "refs/pull/473/head", "4908dc46f", tmp / "473"), {"SIGNIFICANCE"},
             str(reference) if reference else None),
        ]
        for name, folder, expected, against in cases:
            if folder is None:
                print(f"{name:11} skipped: not in the local copies")
                continue
            report = check_path(folder, CheckOptions(against=against))
            errors = {f.rule for f in report.errors}
            found = errors & (CAUSALITY_AND_DATA | {"SIGNIFICANCE"})
            ok = expected <= errors and not (found - expected)
            mismatches += not ok
            print(f"{name:11} expected {sorted(expected)}; errors {sorted(errors)} -> {'OK' if ok else 'MISMATCH'}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

"""The lean install against the full one: pip time and venv size of `pip install .` vs `pip install ".[EXTRA]"`.

Snapshots the project's files (tracked and untracked, not ignored) into a temporary folder, so that pip's in-tree
build writes nothing into the checkout; creates two fresh virtual environments in the same run (`python -m venv`);
installs the snapshot without extras into one and with EXTRA (default dev: train and the test tools) into the other;
times each `pip install` (venv creation not counted) and measures each venv on disk (apparent size of its files).
Then proves the lean one is lean: torch and sentencepiece do not import there, and its `pgolf check` on the shipped
example and `pgolf rules` exit 0. Prints both figures and the ratios full / lean.

    python bench/lean_install.py [--extra dev|train] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "submissions" / "my_run"


def snapshot(dest: Path) -> Path:
    """Copy the project's tracked and untracked (not ignored) files to DEST; return DEST."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def tree_bytes(path: Path) -> int:
    """The apparent size of every file under PATH (symlinks counted as links, not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total


def install(venv: Path, requirement: str) -> float:
    """Create VENV, pip-install REQUIREMENT into it; the seconds pip took."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.perf_counter()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    requirement], check=True)
    return time.perf_counter() - started


def lean_checks(venv: Path) -> list[str]:
    """One line per check that the lean venv lacks the [train] extra and still judges submissions."""
    python, pgolf = str(venv / "bin" / "python"), str(venv / "bin" / "pgolf")
    lines = []
    for module in ("torch", "sentencepiece"):
        code = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode
        lines.append(f"  import {module}: {'fails (absent)' if code else 'SUCCEEDS (not lean)'}")
    for args in (["check", str(EXAMPLE)], ["rules"]):
        started = time.perf_counter()
        proc = subprocess.run([pgolf, *args], capture_output=True, text=True, check=False, cwd=ROOT)
        first = (proc.stdout.strip().splitlines() or ["(no output)"])[0]
        lines.append(f"  pgolf {' '.join(args[:1])}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s"
                     f" ({first[:70]})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", default="dev", choices=["dev", "train"], help="the full install's extra")
    ap.add_argument("--keep", type=Path, default=None, help="build the venvs here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgolf-lean-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = snapshot(Path(tmp) / "src")
        empty = work / "venv-empty"
        subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
        base_bytes = tree_bytes(empty)
        rows = []
        for label, requirement in (("lean", str(src)), (f"[{args.extra}]", f"{src}[{args.extra}]")):
            venv = work / f"venv-{label.strip('[]')}"
            seconds = install(venv, requirement)
            rows.append((label, seconds, tree_bytes(venv)))
        (_, lean_s, lean_b), (full_label, full_s, full_b) = rows
        print(f"python {sys.version.split()[0]}; an empty venv is {base_bytes / 2**20:.1f} MiB")
        print(f"{'install':<10} {'pip s':>8} {'venv MiB':>10} {'added MiB':>10}")
        for label, seconds, size in rows:
            print(f"{label:<10} {seconds:8.1f} {size / 2**20:10.1f} {(size - base_bytes) / 2**20:10.1f}")
        print(f"ratio {full_label} / lean: pip time {full_s / lean_s:.1f}x, venv size {full_b / lean_b:.1f}x, "
              f"added size {(full_b - base_bytes) / max(lean_b - base_bytes, 1):.1f}x")
        print("lean venv:")
        print("\n".join(lean_checks(work / "venv-lean")))


if __name__ == "__main__":
    main()

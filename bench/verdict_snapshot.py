"""Snapshot `check --format json` over every folder we can judge, to prove a refactoring changed no verdict.

    python bench/verdict_snapshot.py snap OUT_DIR [--sources DIR]     # write one JSON file per target
    python bench/verdict_snapshot.py diff BEFORE_DIR AFTER_DIR         # compare two snapshots, exit 1 on a change

Targets: submissions/ (the shipped example and every example folder), every records folder merged at the commit
the docs cite, and the folder of every dev-corpus entry at its labelled commit. The challenge's folders are
extracted once under --sources (default /tmp/pgolf-snapshot-sources) so that two snapshots see identical paths.
Each target runs through the CLI as its own process, so the snapshot does not depend on import paths. Timing
figures (`timings_ms`, `timings`) are removed before writing; everything else is kept byte for byte.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records_source import MAIN_REF, find_repo  # noqa: E402

CORPUS = Path("/work/shared/corpus/dev.json")
TIMING_KEYS = ("timings_ms", "timings")


def _extract(repo: Path, commit: str, folder: str, dest: Path) -> bool:
    if dest.exists():
        return True
    done = subprocess.run(["git", "-C", str(repo), "archive", commit, folder], capture_output=True)
    if done.returncode != 0:
        return False
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(part, filter="data")
    (part / folder).rename(dest)
    shutil.rmtree(part)
    return True


def targets(sources: Path) -> dict[str, Path]:
    """Snapshot name -> folder to check."""
    # relative to the checkout, so that two checkouts of the project give the same report target
    out = {f"submissions/{p.name}": p.relative_to(ROOT) for p in sorted((ROOT / "submissions").iterdir())
           if p.is_dir() and p.name != "examples"}
    out.update({f"submissions/examples/{p.name}": p.relative_to(ROOT)
                for p in sorted((ROOT / "submissions" / "examples").iterdir()) if p.is_dir()})
    repo = find_repo()
    if repo is None:
        print("no local openai/parameter-golf copy (set PG_REPO): submissions/ only", file=sys.stderr)
        return out
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-d", "--name-only", f"{MAIN_REF}:records"],
                             capture_output=True, text=True, check=True).stdout.split()
    for track in listing:
        folders = subprocess.run(["git", "-C", str(repo), "ls-tree", "-d", "--name-only",
                                  f"{MAIN_REF}:records/{track}"], capture_output=True, text=True, check=True)
        for name in folders.stdout.split():
            dest = sources / "records" / track / name
            if _extract(repo, MAIN_REF, f"records/{track}/{name}", dest):
                out[f"records/{track}/{name}"] = dest
    if CORPUS.exists():
        for entry in json.loads(CORPUS.read_text()):
            if entry.get("source_repo", "openai/parameter-golf") != "openai/parameter-golf":
                continue
            folder = str(Path(entry["path"]).parent)
            # a corpus folder sits inside records/<track>/ so that the track is inferred as it is for the PR
            dest = sources / "corpus" / entry["id"] / Path(folder).parent.name / Path(folder).name
            if _extract(repo, entry["commit"], folder, dest):
                out[f"corpus/{entry['id']}"] = dest
    return out


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def snap(out_dir: Path, sources: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, folder in targets(sources).items():
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "check", str(folder), "--format", "json"],
                              capture_output=True, text=True, cwd=ROOT)
        try:
            body = json.dumps(_strip(json.loads(done.stdout)), indent=1)
        except json.JSONDecodeError:
            body = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        (out_dir / (name.replace("/", "__") + ".json")).write_text(body + "\n", encoding="utf-8")
        print(f"{done.returncode} {name}")
    return 0


def diff(before: Path, after: Path) -> int:
    names = sorted({p.name for p in before.glob("*.json")} | {p.name for p in after.glob("*.json")})
    changed = [n for n in names
               if not (before / n).exists() or not (after / n).exists()
               or (before / n).read_bytes() != (after / n).read_bytes()]
    for name in changed:
        print(f"changed: {name}")
    print(f"{len(names)} targets, {len(changed)} changed")
    return 1 if changed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("snap")
    one.add_argument("out", type=Path)
    one.add_argument("--sources", type=Path, default=Path("/tmp/pgolf-snapshot-sources"))
    two = sub.add_parser("diff")
    two.add_argument("before", type=Path)
    two.add_argument("after", type=Path)
    args = parser.parse_args()
    return snap(args.out, args.sources) if args.cmd == "snap" else diff(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())

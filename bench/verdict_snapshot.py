"""Snapshot `check --format json` over every folder we can judge, to prove a refactoring changed no verdict.

    python bench/verdict_snapshot.py snap OUT_DIR [--sources DIR] [--formats json,text,markdown,sarif]
    python bench/verdict_snapshot.py diff BEFORE_DIR AFTER_DIR         # compare two snapshots, exit 1 on a change

Targets: submissions/ (the shipped example and every example folder), every records folder merged at the commit
the docs cite, the folder of every dev-corpus entry at its labelled commit, and significance runs: each merged
record-track folder `--against` the one before it, under both policies, and the shipped example against number
lists. The challenge's folders are extracted once under --sources (default /tmp/pgolf-snapshot-sources) so that
two snapshots see identical paths. Each run goes through the CLI as its own process, so the snapshot does not
depend on import paths. Timing figures are removed before writing (the `timings_ms` / `timings` keys of the JSON,
the timing tables of text and Markdown); everything else is kept byte for byte.
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
TIMING_TITLES = ("timings", "timings ms")
NUMBER_REFERENCES = ("1.70,1.71,1.69", "2.8:1.70,2.82:1.71", "1.7")


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


def runs(sources: Path) -> dict[str, list[str]]:
    """Snapshot name -> `check` arguments."""
    folders = targets(sources)
    out = {name: [str(folder)] for name, folder in folders.items()}
    record_track = sorted(f for n, f in folders.items() if n.startswith("records/track_10min_16mb/"))
    for before, after in zip(record_track, record_track[1:]):
        for policy in ("readme", "frontier"):
            out[f"against/{after.name}/{policy}"] = [str(after), "--against", str(before), "--policy", policy]
    for i, numbers in enumerate(NUMBER_REFERENCES):
        out[f"against/my_run/{i}"] = ["submissions/my_run", "--against", numbers]
    return out


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _strip_tables(text: str) -> str:
    """Text or Markdown without its timing tables: a title line and every blank or table line after it."""
    out, skipping = [], False
    for line in text.split("\n"):
        if line.strip().lstrip("#").strip() in TIMING_TITLES:
            skipping = True
            continue
        if skipping and (not line.strip() or line.startswith(("  ", "|"))):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out)


def _body(fmt: str, done: subprocess.CompletedProcess) -> str:
    if fmt != "json":
        return f"exit {done.returncode}\n" + _strip_tables(done.stdout)
    try:
        return json.dumps(_strip(json.loads(done.stdout)), indent=1)
    except json.JSONDecodeError:
        return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def snap(out_dir: Path, sources: Path, formats: list[str]) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, args in runs(sources).items():
        for fmt in formats:
            done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "check", *args, "--format", fmt],
                                  capture_output=True, text=True, cwd=ROOT)
            (out_dir / f"{name.replace('/', '__')}.{fmt}").write_text(_body(fmt, done) + "\n", encoding="utf-8")
        print(f"{done.returncode} {name}")
    return 0


def diff(before: Path, after: Path) -> int:
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    changed = [n for n in names
               if not (before / n).exists() or not (after / n).exists()
               or (before / n).read_bytes() != (after / n).read_bytes()]
    for name in changed:
        print(f"changed: {name}")
    print(f"{len(names)} outputs, {len(changed)} changed")
    return 1 if changed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("snap")
    one.add_argument("out", type=Path)
    one.add_argument("--sources", type=Path, default=Path("/tmp/pgolf-snapshot-sources"))
    one.add_argument("--formats", default="json", help="comma-separated: json, text, markdown, sarif")
    two = sub.add_parser("diff")
    two.add_argument("before", type=Path)
    two.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.cmd == "diff":
        return diff(args.before, args.after)
    return snap(args.out, args.sources, [f for f in args.formats.split(",") if f])


if __name__ == "__main__":
    raise SystemExit(main())

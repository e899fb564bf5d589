"""Load a submission folder (or a single script) read-only: which files it has and which role each plays.

Nothing here writes to the folder. Symlinks are listed but never followed out of the folder; files are classified
by name only to decide what to *read*, never to decide a verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError

SCRIPT_NAME = "train_gpt.py"
LOG_SUFFIXES = (".log", ".txt")
NOT_LOGS = {"requirements.txt", "README.txt"}  # text files that are never run logs
MAX_FILES = 10_000  # a folder with more entries than this is not a submission; stop listing


@dataclass
class Submission:
    root: Path  # the folder judged (for a single script: its parent)
    script: Path | None  # the entry script, train_gpt.py (or the single script given)
    single_script: bool  # True when the user pointed at one .py file
    files: list[Path] = field(default_factory=list)  # regular files inside root, relative, sorted
    symlinks: list[Path] = field(default_factory=list)  # relative paths of symlinks (not followed)
    logs: list[Path] = field(default_factory=list)  # relative paths of files that look like run logs
    submission_json: Path | None = None  # relative path of submission.json (or submission_<x>.json)
    readme: Path | None = None

    def display(self, rel: Path | str) -> str:
        """The path as findings print it: relative to the folder, with forward slashes."""
        return Path(rel).as_posix()

    def abs(self, rel: Path | str) -> Path:
        return self.root / rel


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    files: list[Path] = []
    links: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in {"__pycache__", ".git"})
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            full = base / name
            rel = full.relative_to(root)
            if full.is_symlink():
                links.append(rel)
            elif full.is_file():
                files.append(rel)
            if len(files) + len(links) > MAX_FILES:
                raise UserError(f"{root}: more than {MAX_FILES} files; not a submission folder")
    return files, links


def _looks_like_log(rel: Path) -> bool:
    return rel.suffix in LOG_SUFFIXES and rel.name not in NOT_LOGS and "requirements" not in rel.name


def load_submission(path: Path) -> Submission:
    """Describe PATH (a folder or a .py file); raise UserError when it is missing or unreadable."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix != ".py":
            raise UserError(f"{path}: expected a submission folder or a .py script")
        return Submission(root=path.parent, script=path, single_script=True, files=[Path(path.name)])
    if not path.is_dir():
        raise UserError(f"{path}: not a regular file or folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"{path}: folder is not readable")
    files, links = _walk(path)
    sub = Submission(root=path, script=None, single_script=False, files=files, symlinks=links)
    top = {f.name: f for f in files if len(f.parts) == 1}
    if SCRIPT_NAME in top:
        sub.script = path / SCRIPT_NAME
    sub.readme = top.get("README.md")
    if "submission.json" in top:
        sub.submission_json = top["submission.json"]
    else:
        alt = sorted(f for f in top.values() if f.name.startswith("submission") and f.suffix == ".json")
        sub.submission_json = alt[0] if alt else None
    sub.logs = [f for f in files if _looks_like_log(f)]
    return sub

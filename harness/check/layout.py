"""SUBMISSION-FORMAT: one dated folder with README.md, submission.json, logs and a runnable train_gpt.py.

Missing required files are errors; a folder name under records/ that is not `YYYY-MM-DD_description` (elsewhere an
info: the name matters once the folder is submitted), and non-scored extras
(`train_gpt_human.py`, notebooks, large data files) are warnings; a symlink pointing outside the folder is an error
and is never followed; a binary, non-UTF-8 or empty script is an error. For a single script only the script checks
apply; the folder checks are listed as not checked.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from harness.submission.folder import SCRIPT_NAME, Submission
from harness.verdict import Report
from rules.finding import Finding
from rules.parsing import SourceParseError, decode_source

RULE = "SUBMISSION-FORMAT"
FOLDER_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})_\S.*$")
LARGE_FILE_BYTES = 5_000_000  # data or checkpoints this big do not belong in a PR folder (artifact excepted)
NOTEBOOK_SUFFIXES = (".ipynb",)
MODEL_SUFFIXES = (".ptz", ".pt", ".bin", ".brotli", ".br", ".xz", ".lzma", ".zst", ".zstd", ".npz")
_HUMAN_COPY = re.compile(r"^train_gpt[_\-.].*\.py$")  # train_gpt_human.py, train_gpt.orig.py, ...


def check_layout(sub: Submission, report: Report) -> None:
    """Add SUBMISSION-FORMAT findings for SUB; put what was looked at into report.facts['layout']."""
    facts: dict = {"folder_checks": not sub.single_script}
    report.facts["layout"] = facts
    _check_script(sub, report)
    if sub.single_script:
        facts["not_checked"] = ["required files", "folder name", "extras", "symlinks"]
        report.skip(RULE, "single script given: folder layout (README.md, submission.json, logs, name) not checked")
        return
    _check_required(sub, report)
    _check_name(sub, report)
    facts["extras"] = _check_extras(sub, report)
    _check_symlinks(sub, report)
    report.mark_checked(RULE)


def _error(report: Report, message: str, file: str | None = None, line: int | None = None) -> None:
    report.add(Finding(RULE, "error", message, file=file, line=line))


def _warning(report: Report, message: str, file: str | None = None) -> None:
    report.add(Finding(RULE, "warning", message, file=file))


def _check_script(sub: Submission, report: Report) -> None:
    if sub.script is None:
        return  # reported with the other missing files
    rel = sub.script.name if sub.single_script else sub.script.relative_to(sub.root).as_posix()
    try:
        data = sub.script.read_bytes()
    except OSError as exc:
        _error(report, f"{rel} cannot be read ({exc.strerror or exc})", rel)
        return
    if not data.strip():
        _error(report, f"{rel} is empty: not a runnable script", rel)
        return
    try:
        decode_source(data, rel)
    except SourceParseError as exc:
        _error(report, f"{exc.message}: the script must be UTF-8 Python text", rel, exc.line)


def _check_required(sub: Submission, report: Report) -> None:
    missing = []
    if sub.script is None:
        missing.append(SCRIPT_NAME)
    if sub.readme is None:
        missing.append("README.md")
    if sub.submission_json is None:
        missing.append("submission.json")
    if not sub.logs:
        missing.append("a training log (*.log / *.txt)")
    for name in missing:
        _error(report, f"required file missing: {name}")


def _check_name(sub: Submission, report: Report) -> None:
    name = sub.root.resolve().name
    match = FOLDER_NAME.match(name)
    valid_date = False
    if match:
        try:
            dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            valid_date = True
        except ValueError:
            pass
    if valid_date:
        return
    message = f"folder name {name!r} is not YYYY-MM-DD_description"
    if sub.root.resolve().parent.parent.name == "records":  # records/<track>/<folder>
        _warning(report, message)
    else:  # a working folder: the name is the challenge's only once the folder goes under records/<track>/
        report.add(Finding(RULE, "info", message + " (required once it goes under records/<track>/)"))


def _check_extras(sub: Submission, report: Report) -> list[str]:
    flagged = []
    for rel in sub.files:
        posix = rel.as_posix()
        reason = None
        if rel.suffix in NOTEBOOK_SUFFIXES:
            reason = "a notebook"
        elif len(rel.parts) == 1 and rel.name != SCRIPT_NAME and _HUMAN_COPY.match(rel.name):
            reason = "another copy of the training script (only train_gpt.py is scored)"
        elif rel.suffix in {".pyc", ".so", ".o"} or "__pycache__" in rel.parts:
            reason = "a build or cache output"
        else:
            try:
                size = sub.abs(rel).stat().st_size
            except OSError:
                continue
            if size > LARGE_FILE_BYTES and rel.suffix not in MODEL_SUFFIXES and not rel.name.startswith("final_model"):
                reason = f"a large data file ({size:,} bytes)"
        if reason:
            flagged.append(posix)
            _warning(report, f"unexpected extra file {posix}: {reason}", posix)
    return flagged


def _check_symlinks(sub: Submission, report: Report) -> None:
    root = os.path.realpath(sub.root)
    for rel in sub.symlinks:
        link = sub.abs(rel)
        try:
            target = os.readlink(link)
        except OSError:
            target = "?"
        # realpath resolves the chain of names only; the target's contents are never read.
        resolved = os.path.realpath(link)
        if resolved != root and not resolved.startswith(root + os.sep):
            _error(report, f"symlink {rel.as_posix()} points outside the submission folder ({target}); not followed",
                   Path(rel).as_posix())
        else:
            _warning(report, f"symlink {rel.as_posix()} -> {target}: ship the file itself", Path(rel).as_posix())

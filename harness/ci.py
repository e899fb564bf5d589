"""`ci`: check every submission folder a pull request added or changed, for a challenge repository's CI.

Changed files come from ``git diff --name-status BASE...HEAD``. A submission folder is ``records/<track>/<name>/``;
each changed one is exported from HEAD blob by blob (the checkout is never touched) and judged with
``harness.check.check_path``. Files changed outside one records folder, a pull request that touches several
folders, and edits to a folder already merged (one that exists at the merge base) are SUBMISSION-FORMAT findings of
the pull request itself. A reviewer allow-list (``--allow``) applies to every report. Exit code: 1 when any error
finding exists, else 2 when something could not be checked, else 0. The outputs (merged SARIF, the PR comment,
workflow annotations, the printed findings) are harness.report.ci's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.check.allowlist import AllowEntry, apply_allow_list, load_allow_list
from harness.report.ci import ci_text, write_ci_outputs
from harness.submission.gitsource import (
    RECORDS,
    changed_files,
    export_folder,
    folder_trees,
    git,
    require_repo,
    submission_folder,
)
from harness.verdict import Report, worst_exit_code
from rules.finding import Evidence, Finding

# git's --name-status letters as words, for the files of an edited merged folder.
CHANGE_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}
LISTED_FILES = 8  # files named in one message; the evidence lists every one


@dataclass(frozen=True)
class CiOptions:
    base: str
    head: str = "HEAD"
    repo: Path = Path(".")
    # The outputs (harness.report.ci): SARIF and Markdown files, annotations in the printed text.
    sarif: Path | None = None
    markdown: Path | None = None
    annotations: bool | None = None  # None: on under GitHub Actions
    policy: str = "readme"
    allow_file: Path | None = None  # reviewer allow-list, the format of `check --allow`
    # Judges one exported folder; default harness.check.check_path (tests substitute a small stand-in).
    checker: Callable[[Path, str], Report] | None = None


@dataclass
class CiResult:
    text: str
    exit_code: int
    folders: list[str] = field(default_factory=list)
    reports: dict[str, Report] = field(default_factory=dict)  # folder (repo-relative) -> its report
    sarif: dict[str, Any] | None = None
    markdown: str = ""


def _merge_base(repo: Path, base: str, head: str) -> str:
    return git(repo, "merge-base", base, head).decode().strip()


def _merged_folder_findings(repo: Path, base: str, head: str, changes: list[tuple[str, str]],
                            folders: list[str]) -> list[Finding]:
    """One SUBMISSION-FORMAT error per folder that exists at the merge base and whose files the PR changes."""
    merged = folder_trees(repo, _merge_base(repo, base, head), folders)
    out = []
    for folder in sorted(merged):
        files = sorted((p, status) for status, p in changes if submission_folder(p) == folder)
        named = ", ".join(f"{p.removeprefix(folder + '/')} ({CHANGE_WORDS.get(s[:1], s)})"
                          for p, s in files[:LISTED_FILES])
        more = f" and {len(files) - LISTED_FILES} more" if len(files) > LISTED_FILES else ""
        out.append(Finding(
            "SUBMISSION-FORMAT", "error",
            f"{folder} is already merged on the base branch and this pull request edits it: {named}{more}; a "
            "merged record is never changed: submit a new folder instead",
            file=files[0][0], source="artifact",
            evidence=tuple(Evidence(p, None, CHANGE_WORDS.get(s[:1], s)) for p, s in files)))
    return out


def _layout_report(changes: list[tuple[str, str]], folders: list[str], merged: list[Finding]) -> Report:
    """SUBMISSION-FORMAT for the pull request as a whole: files outside a records folder, several folders, edits
    to merged folders."""
    report = Report(target="pull request")
    report.mark_checked("SUBMISSION-FORMAT")
    outside = sorted(p for status, p in changes if submission_folder(p) is None)
    for path in outside:
        report.add(Finding("SUBMISSION-FORMAT", "error",
                           f"{path} is changed outside a records/<track>/<folder>/ submission folder; a "
                           "submission adds one folder and nothing else", file=path, source="artifact"))
    for finding in merged:
        report.add(finding)
    if len(folders) > 1:
        report.add(Finding("SUBMISSION-FORMAT", "warning",
                           f"the pull request touches {len(folders)} submission folders "
                           f"({', '.join(folders[:5])}); a submission is one folder", source="artifact"))
    return report


def entries_for(folder: str, entries: list[AllowEntry]) -> list[AllowEntry]:
    """The allow entries that apply to FOLDER's report, with file paths relative to it: an entry naming a
    repository path under FOLDER is made folder-relative, one naming another records folder is left out."""
    out = []
    for entry in entries:
        file = entry.file
        if folder and file is not None and file.startswith(folder + "/"):
            out.append(replace(entry, file=file.removeprefix(folder + "/")))
        elif not (folder and file is not None and submission_folder(file) is not None):
            out.append(entry)
    return out


def _check_folder(path: Path, policy: str) -> Report:
    from harness.check.pipeline import CheckOptions, check_path

    return check_path(path, CheckOptions(policy=policy))


def _judge(repo: Path, opts: CiOptions, changes: list[tuple[str, str]], folders: list[str]) -> dict[str, Report]:
    """The pull request's own report (key "") when it has findings, then one report per folder HEAD still has."""
    reports: dict[str, Report] = {}
    layout = _layout_report(changes, folders, _merged_folder_findings(repo, opts.base, opts.head, changes, folders))
    if layout.findings:
        reports[""] = layout
    with tempfile.TemporaryDirectory(prefix="pgolf-ci-") as tmp:
        for folder in folders:
            exported, _absent = export_folder(repo, opts.head, folder, Path(tmp))
            if exported is None:
                continue  # the pull request deletes this folder: nothing to judge
            report = (opts.checker or _check_folder)(exported, opts.policy)
            report.target = folder
            reports[folder] = report
    return reports


def run_ci(opts: CiOptions) -> CiResult:
    """Check the folders changed between BASE and HEAD; write SARIF / Markdown where asked (harness.report.ci)."""
    repo = Path(opts.repo)
    allow = load_allow_list(opts.allow_file)  # a malformed list stops ci before anything is judged
    require_repo(repo)  # a worktree or bare repo works; anything else is a UserError
    changes = changed_files(repo, opts.base, opts.head)
    folders = sorted({f for _s, p in changes if (f := submission_folder(p)) is not None})
    reports = _judge(repo, opts, changes, folders)
    for folder, report in reports.items():
        apply_allow_list(report, entries_for(folder, allow))
    code = worst_exit_code(r.exit_code for r in reports.values())
    sarif, markdown = write_ci_outputs(reports, opts.base, opts.head, sarif_path=opts.sarif,
                                       markdown_path=opts.markdown)
    text = ci_text(reports, folders, code, opts.base, opts.head, RECORDS, opts.annotations)
    return CiResult(text=text, exit_code=code, folders=folders, reports=reports, sarif=sarif, markdown=markdown)

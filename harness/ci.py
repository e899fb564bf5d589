"""`ci`: check every submission folder a pull request added or changed, for a challenge repository's CI.

Changed files come from ``git diff --name-only BASE...HEAD``. A submission folder is ``records/<track>/<name>/``;
each changed one is exported from HEAD with ``git archive`` (the checkout is never touched) and judged with
``harness.check.check_path``. Files changed outside one records folder, and a pull request that touches several
folders, are SUBMISSION-FORMAT findings. Exit code: 1 when any error finding exists, else 2 when something could
not be checked, else 0. The outputs (merged SARIF, Markdown summary, workflow annotations) are harness.report.ci's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.ci import ci_text, write_ci_outputs
from harness.submission.gitsource import RECORDS, changed_files, export_folder, require_repo, submission_folder
from harness.verdict import EXIT_COULD_NOT_CHECK, EXIT_FINDINGS, EXIT_PASS, Report
from rules.finding import Finding


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


def _layout_report(changes: list[tuple[str, str]], folders: list[str]) -> Report:
    """SUBMISSION-FORMAT for the pull request as a whole: files outside a records folder, several folders."""
    report = Report(target="pull request")
    report.mark_checked("SUBMISSION-FORMAT")
    outside = sorted(p for status, p in changes if submission_folder(p) is None)
    for path in outside:
        report.add(Finding("SUBMISSION-FORMAT", "error",
                           f"{path} is changed outside a records/<track>/<folder>/ submission folder; a "
                           "submission adds one folder and nothing else", file=path, source="artifact"))
    if len(folders) > 1:
        report.add(Finding("SUBMISSION-FORMAT", "warning",
                           f"the pull request touches {len(folders)} submission folders "
                           f"({', '.join(folders[:5])}); a submission is one folder", source="artifact"))
    return report


def _exit_code(reports: dict[str, Report]) -> int:
    if any(r.errors for r in reports.values()):
        return EXIT_FINDINGS
    if any(r.could_not_check for r in reports.values()):
        return EXIT_COULD_NOT_CHECK
    return EXIT_PASS


def _check_folder(path: Path, policy: str) -> Report:
    from harness.check.pipeline import CheckOptions, check_path

    return check_path(path, CheckOptions(policy=policy))


def run_ci(opts: CiOptions) -> CiResult:
    """Check the folders changed between BASE and HEAD; write SARIF / Markdown where asked (harness.report.ci)."""
    repo = Path(opts.repo)
    require_repo(repo)  # a worktree or bare repo works; anything else is a UserError
    changes = changed_files(repo, opts.base, opts.head)
    folders = sorted({f for _s, p in changes if (f := submission_folder(p)) is not None})
    reports: dict[str, Report] = {}
    layout = _layout_report(changes, folders)
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
    code = _exit_code(reports)
    sarif, markdown = write_ci_outputs(reports, opts.base, opts.head, sarif_path=opts.sarif,
                                       markdown_path=opts.markdown)
    text = ci_text(reports, folders, code, opts.base, opts.head, RECORDS, opts.annotations)
    return CiResult(text=text, exit_code=code, folders=folders, reports=reports, sarif=sarif, markdown=markdown)

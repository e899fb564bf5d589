"""harness.check.layout: SUBMISSION-FORMAT for folders (required files, name, extras, symlinks) and single scripts."""

from __future__ import annotations

import os

import pytest

from harness.check.layout import check_layout
from harness.submission.folder import load_submission
from harness.verdict import Report

from .conftest import COMPLETE


def _layout(sub):
    report = Report(str(sub.root))
    check_layout(sub, report)
    return report


def test_complete_folder_passes(submission):
    """A dated folder with README, submission.json, a log and train_gpt.py has no layout finding."""
    report = _layout(submission(COMPLETE))
    assert report.findings == [] and "SUBMISSION-FORMAT" in report.checked


def test_empty_folder_reports_every_missing_file(submission):
    """An empty folder gives one error per required file."""
    report = _layout(submission({}))
    missing = sorted(f.message for f in report.errors)
    assert len(missing) == 4 and all("required file missing" in m for m in missing)


@pytest.mark.parametrize("drop, named", [
    ("README.md", "README.md"), ("submission.json", "submission.json"), ("train_seed42.log", "training log"),
    ("train_gpt.py", "train_gpt.py"),
])
def test_each_missing_file_is_an_error(submission, drop, named):
    """Removing any one required file gives exactly one error naming it."""
    files = {k: v for k, v in COMPLETE.items() if k != drop}
    report = _layout(submission(files))
    assert [f.severity for f in report.findings] == ["error"] and named in report.findings[0].message


def test_submission_variant_name_is_accepted(submission):
    """submission_<x>.json satisfies the submission.json requirement."""
    files = {k: v for k, v in COMPLETE.items() if k != "submission.json"} | {"submission_seed42.json": "{}"}
    assert _layout(submission(files)).findings == []


@pytest.mark.parametrize("name", ["records/track_10min_16mb/my_run", "records/track_non_record_16mb/2026-13-01_bad",
                                  "records/x/20260401_nodash"])
def test_bad_folder_name_under_records_is_a_warning(submission, name):
    """A folder under records/ not named YYYY-MM-DD_description gets a warning."""
    report = _layout(submission(COMPLETE, name=name))
    assert [(f.severity, "YYYY-MM-DD" in f.message) for f in report.findings] == [("warning", True)]


@pytest.mark.parametrize("name", ["my_run", "submissions/my_run", "records_backup/run1", "2026-13-01_bad_month"])
def test_bad_folder_name_outside_records_is_an_info(submission, name):
    """A working folder outside any records/ tree only gets an info: the name matters once it is submitted."""
    report = _layout(submission(COMPLETE, name=name))
    assert [(f.severity, "YYYY-MM-DD" in f.message) for f in report.findings] == [("info", True)]


@pytest.mark.parametrize("extra, content", [
    ("train_gpt_human.py", "print(1)\n"),
    ("analysis.ipynb", "{}"),
    ("data.npy", b"\x00" * 5_000_001),
])
def test_unexpected_extras_are_warnings(submission, extra, content):
    """Non-scored script copies, notebooks and large data files are warned about."""
    report = _layout(submission(COMPLETE | {extra: content}))
    assert [(f.severity, f.file) for f in report.findings] == [("warning", extra)]


def test_symlink_outside_is_an_error_and_not_followed(submission, tmp_path):
    """A symlink to a file outside the folder is an error; the target's contents are not read."""
    secret = tmp_path / "outside_secret.txt"
    secret.write_text("SECRET\n")
    root = submission(COMPLETE).root
    os.symlink(secret, root / "data.txt")
    report = _layout(load_submission(root))
    errors = report.errors
    assert len(errors) == 1 and "outside" in errors[0].message and "SECRET" not in errors[0].message


@pytest.mark.parametrize("script, fragment", [
    (b"\x7fELF\x02\x01\x00\x00", "binary"),
    (b"x = '\xe9'\n", "not valid utf-8"),
    (b"", "empty"),
])
def test_bad_script_is_an_error(submission, script, fragment):
    """A binary, non-UTF-8 or empty train_gpt.py is an error."""
    report = _layout(submission(COMPLETE | {"train_gpt.py": script}))
    assert [f.severity for f in report.findings] == ["error"] and fragment in report.findings[0].message.lower()


def test_single_script_only_checks_the_script(tmp_path):
    """For a single script the folder checks are listed as not checked and the script is still judged."""
    script = tmp_path / "anything.py"
    script.write_bytes(b"\x00\x01")
    report = _layout(load_submission(script))
    assert [n.rule for n in report.not_checked] == ["SUBMISSION-FORMAT"]
    assert len(report.errors) == 1 and "binary" in report.errors[0].message

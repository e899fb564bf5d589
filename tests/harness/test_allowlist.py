"""Reviewer allow-lists: parsing, validation and how allowed findings are kept visible."""

from __future__ import annotations

import pytest

from harness.check.allowlist import apply_allow_list, load_allow_list
from harness.errors import UserError
from harness.verdict import Report
from rules.finding import Finding


@pytest.mark.parametrize(("name", "text"), [
    ("allow.toml", '[[allow]]\nrule = "TTT-WARMUP-ON-VAL"\nfile = "train_gpt.py"\nreason = "state discarded"\n'),
    ("allow.json", '[{"rule": "TTT-WARMUP-ON-VAL", "file": "train_gpt.py", "reason": "state discarded"}]'),
])
def test_allow_list_formats(tmp_path, name, text):
    """TOML and JSON allow-lists are read into the same entries."""
    path = tmp_path / name
    path.write_text(text)
    [entry] = load_allow_list(path)
    assert (entry.rule, entry.file, entry.reason) == ("TTT-WARMUP-ON-VAL", "train_gpt.py", "state discarded")


@pytest.mark.parametrize("text", [
    '[[allow]]\nrule = "TTT-WARMUP-ON-VAL"\n',  # no reason
    '[[allow]]\nrule = "NOT-A-RULE"\nreason = "x"\n',
    '[[allow]]\nrule = "TTT-WARMUP-ON-VAL"\nreason = "x"\nline = "twelve"\n',
    'this is not toml [',
])
def test_bad_allow_list_is_a_user_error(tmp_path, text):
    """An allow-list without a reason, with an unknown rule, or malformed is refused with one line."""
    path = tmp_path / "allow.toml"
    path.write_text(text)
    with pytest.raises(UserError):
        load_allow_list(path)


def test_allowed_findings_leave_the_verdict_but_stay_visible(tmp_path):
    """An allowed error no longer fails the report and is listed with its reason."""
    path = tmp_path / "allow.toml"
    path.write_text('[[allow]]\nrule = "TTT-PREEVAL-VAL"\nline = 10\nreason = "reviewed by hand"\n')
    report = Report("x")
    report.add(Finding("TTT-PREEVAL-VAL", "error", "m", file="train_gpt.py", line=10))
    report.add(Finding("TTT-PREEVAL-VAL", "error", "m", file="train_gpt.py", line=99))
    apply_allow_list(report, load_allow_list(path))
    assert [f.line for f in report.findings] == [99]
    assert report.allowed[0].reason == "reviewed by hand"

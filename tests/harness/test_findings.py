"""The report model: verdicts, exit codes and the JSON contract."""

from __future__ import annotations

import pytest

from harness.verdict import Report
from rules.finding import Finding


@pytest.mark.parametrize(("severities", "could_not_check", "verdict", "code"), [
    ((), False, "pass", 0),
    (("warning", "info"), False, "pass", 0),
    (("error",), False, "fail", 1),
    (("error",), True, "fail", 1),
    (("warning",), True, "error", 2),
])
def test_verdict_and_exit_code(severities, could_not_check, verdict, code):
    """Errors fail, undecidable targets give exit 2 unless an error already decides, warnings pass."""
    report = Report("x")
    for severity in severities:
        report.add(Finding("SUBMISSION-FORMAT", severity, "m"))
    if could_not_check:
        report.could_not_check.append("no code")
    assert (report.verdict, report.exit_code) == (verdict, code)


@pytest.mark.parametrize(("rule", "severity"), [("NOT-A-RULE", "error"), ("SUBMISSION-FORMAT", "fatal")])
def test_findings_only_use_rulebook_ids_and_known_severities(rule, severity):
    """A finding with an unknown rule ID or severity cannot be built."""
    with pytest.raises(ValueError):
        Finding(rule, severity, "m")


def test_json_contract_fields():
    """to_dict carries verdict and findings with rule, severity, file, line and message."""
    report = Report("x")
    report.add(Finding("ARTIFACT-CAP-16MB", "error", "over", file="train_seed1.log", line=3))
    data = report.to_dict()
    assert data["verdict"] == "fail"
    assert {k: data["findings"][0][k] for k in ("rule", "severity", "file", "line", "message")} == {
        "rule": "ARTIFACT-CAP-16MB", "severity": "error", "file": "train_seed1.log", "line": 3, "message": "over"}


def test_a_crashing_rule_is_not_checked_in_the_report(monkeypatch, legal_submission):
    """A static rule that raises is listed as not checked with its reason; the verdict is not "could not check"."""
    from harness.check.pipeline import check_path
    from rules.network_at_eval import NetworkAtEval

    def boom(self):
        raise KeyError("missing fact")

    monkeypatch.setattr(NetworkAtEval, "finish", boom)
    report = check_path(legal_submission)
    reasons = {n.rule: n.reason for n in report.not_checked}
    assert "NETWORK-AT-EVAL failed" in reasons["NETWORK-AT-EVAL"] and "KeyError" in reasons["NETWORK-AT-EVAL"]
    assert "NETWORK-AT-EVAL" not in report.checked and "TTT-PREEVAL-VAL" in report.checked
    assert report.verdict != "error"

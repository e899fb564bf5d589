"""`check --probe` proves rules at run time and says which rules were judged how."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.check.pipeline import CheckOptions, check_path

EXAMPLES = Path(__file__).resolve().parents[2] / "submissions" / "examples"


@pytest.mark.slow
def test_probe_confirms_static_finding_at_run_time():
    """The pre-quant TTT example fails at run time too, and TTT-PREEVAL-VAL is judged statically and by a probe."""
    report = check_path(EXAMPLES / "illegal_preeval_ttt", CheckOptions(probe=True, probe_timeout=240))
    sources = {f.source for f in report.errors if f.rule == "TTT-PREEVAL-VAL"}
    assert sources == {"static", "runtime"}
    assert report.judged_by["TTT-PREEVAL-VAL"] == ["static code", "runtime probe"]


def test_without_probe_rules_are_judged_statically_only(legal_submission):
    """Without --probe no rule is reported as proven at run time."""
    report = check_path(legal_submission)
    assert all("runtime probe" not in kinds for kinds in report.judged_by.values())

"""The shipped example submissions each get the verdict they were written to demonstrate."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.check.pipeline import check_path

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions" / "examples"

# example folder -> the rule IDs whose error findings it must produce (its README says why)
EXPECTED_ERRORS = {
    "illegal_preeval_ttt": {"TTT-PREEVAL-VAL"},
    "illegal_shimmed_preeval_ttt": {"TTT-PREEVAL-VAL"},
    "illegal_multipass_ttt": {"TTT-MULTIPASS-SCORE"},
    "illegal_rescore": {"RESCORE-S1"},
    "illegal_ngram_cache": {"NGRAM-TARGET-IN-KEY"},
    "illegal_gptq_val_calibration": {"GPTQ-CALIB-VAL"},
    "illegal_train_on_val": {"TRAIN-ON-VAL"},
    "illegal_network_at_eval": {"NETWORK-AT-EVAL"},
    "illegal_over_cap": {"ARTIFACT-CAP-16MB"},
    "illegal_exec_stub": {"ARTIFACT-CAP-16MB"},
    "illegal_over_time": {"TRAIN-TIME-600", "EVAL-TIME-600"},
    "illegal_byte_denominator": {"BPB-BYTE-LUT"},
    "illegal_log_code_mismatch": {"LOG-CODE-CONSISTENCY"},
    "illegal_layout": {"SUBMISSION-FORMAT"},
}
# example folder -> the rule IDs whose warnings it must produce, with no error (its README says why)
EXPECTED_WARNINGS = {"warned_claim_mismatch": {"SIGNIFICANCE"}}


@pytest.mark.parametrize(("name", "rules"), sorted(EXPECTED_WARNINGS.items()))
def test_warned_example_passes_with_its_warnings(name, rules):
    """Each warned example passes, with warnings under the rules it demonstrates."""
    report = check_path(EXAMPLES / name)
    assert report.exit_code == 0, [f.to_dict() for f in report.errors]
    assert rules <= {f.rule for f in report.findings if f.severity == "warning"}


@pytest.mark.parametrize(("name", "rules"), sorted(EXPECTED_ERRORS.items()))
def test_illegal_example_fails_with_its_rule(name, rules):
    """Each illegal example fails with error findings under the rules it demonstrates."""
    report = check_path(EXAMPLES / name)
    found = {f.rule for f in report.errors}
    assert report.exit_code == 1, report.to_dict()
    assert rules <= found, f"expected {rules}, got {found}"


@pytest.mark.parametrize("name", ["legal_score_first_ttt"])
def test_legal_near_miss_has_no_error(name):
    """The legal score-first TTT example slices val_tokens and steps an optimizer, yet gets no error finding."""
    report = check_path(EXAMPLES / name)
    assert report.errors == [], [f.to_dict() for f in report.errors]


def test_every_example_folder_has_an_expectation():
    """No example folder is left without a stated expectation."""
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("probe_")}
    assert folders == set(EXPECTED_ERRORS) | set(EXPECTED_WARNINGS) | {"legal_score_first_ttt"}

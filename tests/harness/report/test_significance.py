"""Tests for harness.check.significance: references from folders and number lists, both policies, units, edge cases."""

from __future__ import annotations

import pytest

from harness.check.significance import check_significance, parse_numbers
from harness.errors import UserError
from harness.verdict import Report


def _pairs(rows):
    return ",".join(f"{loss}:{bpb}" for _, loss, bpb in rows)


def _check(logs, against, policy="readme", claims=None, **kw) -> Report:
    report = Report(target="candidate")
    check_significance(claims, logs, against, policy, report, **kw)
    return report


class TestAcceptance:
    """Real per-seed numbers restated from record logs."""

    def test_473_does_not_beat_374_by_the_margin(self, records, runs_from, write_record):
        """PR #473 against PR #374's folder does not beat it by 0.005 nats at p < 0.01."""
        ref = write_record("374", records["374"])
        report = _check(runs_from(records["473"]), str(ref))
        (finding,) = report.findings
        assert finding.rule == "SIGNIFICANCE" and finding.severity == "error"
        for text in ("0.005 nats", "bpb", "p < 0.01", "one-sample", "0.321"):
            assert text in finding.message
        assert report.all_facts()["significance"]["policies"]["readme"]["method"] == "one-sample"

    def test_473_passes_the_frontier_policy(self, records, runs_from, write_record):
        """The same comparison passes the PR #1902 frontier policy (no margin, p < 0.25)."""
        report = _check(runs_from(records["473"]), str(write_record("374", records["374"])), "frontier")
        assert report.findings == [] and "SIGNIFICANCE" in report.checked
        assert report.all_facts()["significance"]["policies"]["frontier"]["p"] == pytest.approx(0.01123, abs=1e-5)

    def test_1019_beats_549_folder(self, records, runs_from, write_record):
        """#1019 against #549's three-seed folder passes README-strict with Welch p = 0.0095."""
        report = _check(runs_from(records["1019"]), str(write_record("549", records["549"])))
        readme = report.all_facts()["significance"]["policies"]["readme"]
        assert report.findings == [] and readme["method"] == "welch"
        assert readme["p"] == pytest.approx(0.00955, abs=5e-5)
        assert readme["nats_test"]["p"] == pytest.approx(0.00955, abs=5e-5)

    def test_candidate_folder_through_real_loaders(self, records, write_record):
        """Both sides loaded from baseline-dialect folders give the same verdict as stand-in runs."""
        from harness.submission.folder import load_submission
        from harness.submission.logs import load_logs

        cand = load_submission(write_record("473", records["473"]))
        report = _check(load_logs(cand), str(write_record("374", records["374"])))
        assert [f.rule for f in report.findings] == ["SIGNIFICANCE"]
        assert report.all_facts()["significance"]["candidate"]["n"] == 3


class TestReferences:
    """What --against may be."""

    def test_no_reference_is_not_checked(self, records, runs_from):
        """Without --against the rule is listed as not checked with the documented reason."""
        report = _check(runs_from(records["473"]), None)
        assert [(n.rule, n.reason) for n in report.not_checked] == [("SIGNIFICANCE", "no reference given (--against)")]
        assert "SIGNIFICANCE" not in report.checked

    @pytest.mark.parametrize("text, n, has_loss", [("1.12461967", 1, False), ("1.1,1.2 , 1.3", 3, False),
                                                   ("1.89:1.12,1.90:1.13", 2, True), ("1e0", 1, False)])
    def test_number_lists(self, text, n, has_loss):
        """Comma-separated val_bpb values or val_loss:val_bpb pairs parse into a reference sample."""
        sample = parse_numbers(text)
        assert len(sample.values) == n and all((v.val_loss is not None) is has_loss for v in sample.values)

    @pytest.mark.parametrize("text", ["abc", "1.1,foo", "1.0:1.1,1.2", "0", "-1.1", "1.1,,1.2", "no/such/folder"])
    def test_bad_reference_is_a_user_error(self, records, runs_from, text):
        """A reference that is neither a folder nor a clean number list is a one-line UserError."""
        with pytest.raises(UserError):
            _check(runs_from(records["473"]), text)

    def test_bpb_only_reference_converts_with_candidate_ratio(self, records, runs_from):
        """A bpb-only reference still gets the margin in bpb through the candidate's own ratio."""
        report = _check(runs_from(records["473"]), "1.12461967")
        sig = report.all_facts()["significance"]
        assert sig["policies"]["readme"]["delta_bpb"] == pytest.approx(0.00296, abs=1e-5)
        assert "nats_test" not in sig["policies"]["readme"] and report.errors

    def test_duplicate_reference_logs_count_once(self, records, runs_from, write_record, tmp_path):
        """A train.log copy of a seed log is counted once in the reference sample."""
        ref = write_record("549", records["549"])
        (ref / "train.log").write_text((ref / "train_seed1337.log").read_text())
        sig = _check(runs_from(records["1019"]), str(ref)).all_facts()["significance"]
        assert sig["reference"]["n"] == 3 and any("duplicate" in n for n in sig["reference"]["notes"])

    def test_unusable_reference_folder_is_not_checked(self, records, runs_from, tmp_path):
        """A reference folder without any score leaves the rule not checked."""
        (tmp_path / "empty").mkdir()
        report = _check(runs_from(records["473"]), str(tmp_path / "empty"))
        assert report.findings == [] and report.not_checked[0].rule == "SIGNIFICANCE"


class TestCandidate:
    """Where the candidate sample comes from and when it cannot be tested."""

    def test_single_seed_candidate_is_not_a_pass(self, records, runs_from):
        """One candidate seed: 'cannot test with one seed', not checked, and no finding."""
        report = _check(runs_from(records["374"]), _pairs(records["549"]), "frontier")
        assert report.findings == [] and "SIGNIFICANCE" not in report.checked
        assert "cannot test with one seed" in report.not_checked[0].reason
        assert report.all_facts()["significance"]["policies"]["frontier"]["passes"] is None

    def test_claims_fallback_is_said(self, records, claims_from):
        """Without log scores the per-seed claims are used and the notes say so."""
        report = _check([], _pairs(records["549"]), claims=claims_from(records["1019"]))
        sig = report.all_facts()["significance"]
        assert sig["candidate"]["n"] == 3 and "submission.json" in sig["candidate"]["notes"][0]

    def test_unknown_units_skip_readme(self, records, runs_from):
        """No candidate val_loss and no typical ratio: the README margin cannot be converted, so not checked."""
        rows = [(s, None, bpb) for s, _, bpb in records["473"]]
        report = _check(runs_from(rows), "1.12461967")
        assert "unit conversion unknown" in report.not_checked[0].reason and not report.findings

    def test_typical_ratio_from_caller(self, records, runs_from):
        """A caller-given typical ratio converts the margin and says where it came from."""
        rows = [(s, None, bpb) for s, _, bpb in records["473"]]
        report = _check(runs_from(rows), "1.12461967", typical_bpb_per_nat=0.5907)
        assert "typical" in report.all_facts()["significance"]["bpb_per_nat"]["source"] and report.errors

    def test_tokenizer_mismatch_is_noted(self, records, runs_from):
        """Reference pairs with another bpb/nat ratio mark the nats test as not comparable."""
        report = _check(runs_from(records["1019"]), "2.90:1.12,2.91:1.125,2.92:1.13")
        sig = report.all_facts()["significance"]
        assert sig["notes"] and sig["policies"]["readme"]["nats_test"]["comparable"] is False

    def test_unknown_policy(self, records, runs_from):
        """An unknown policy name is a UserError."""
        with pytest.raises(UserError):
            _check(runs_from(records["473"]), "1.1", "strict")

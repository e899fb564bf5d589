"""load_claims over our schema and the legacy submission.json shapes of the records."""

from __future__ import annotations

import json

import pytest

from harness.verdict import Report
from harness.submission.manifest import claims_from_json, load_claims, normalise_track

LEGACY = [
    # (json object, val_bpb text, bytes, bytes key, seeds with a bpb, note fragment)
    ({"val_bpb": 1.2243657, "val_loss": 2.07269931, "bytes_total": 15863489}, "1.2243657", 15863489,
     "bytes_total", {}, "legacy"),
    ({"mean_val_bpb": 1.17475315, "artifact_bytes": 15374243, "track": "10min_16mb",
      "seed_results": {"1337": {"val_loss": 1.98, "val_bpb": 1.17558517}}}, "1.17475315", 15374243,
     "artifact_bytes", {"1337": "1.17558517"}, "mean_val_bpb"),
    ({"val_bpb": 1.08279384, "mean_bpb": 1.08279384, "bytes_total": 15992546,
      "seeds": {"0": {"val_bpb": 1.08209788, "val_loss": 2.79517119, "bytes_total": 15991018}}}, "1.08279384",
     15992546, "bytes_total", {"0": "1.08209788"}, "'seeds' as an object"),
    ({"val_bpb": 1.0912, "bytes_total": 15967483, "seeds": [42, 0, 1337], "seed_scores": [1.09057, 1.09084, 1.0923]},
     "1.0912", 15967483, "bytes_total", {"42": "1.09057", "0": "1.09084", "1337": "1.0923"}, "seed_scores"),
    ({"val_bpb": 1.15015359, "seeds": [1337, 42, 123], "p_value": "<0.001", "artifact_bytes_mean": 15427455},
     "1.15015359", 15427455, "artifact_bytes_mean", {}, "seed ids only"),
    ({"val_bpb": 1.1556, "val_loss": 1.9511, "artifact_size_bytes": 15878809}, "1.1556", 15878809,
     "artifact_size_bytes", {}, "artifact_size_bytes"),
    ({"val_loss": None, "val_bpb": 1.32814313, "bytes_total": 15327112, "track": "non-record-16mb"},
     "1.32814313", 15327112, "bytes_total", {}, "val_loss is null"),
    ({"val_loss": 1.14276, "bytes_total": 15900000}, None, 15900000, "bytes_total", {}, "no score claim"),
    ({"val_bpb": 1.081, "val_bpb_std": 0.0002, "artifact_bytes_mean": 1, "artifact_bytes_max": 15992919},
     "1.081", 15992919, "artifact_bytes_max", {}, "artifact_bytes_max"),
]


@pytest.mark.parametrize("data, bpb, size, key, seeds, note", LEGACY)
def test_legacy_shapes(data, bpb, size, key, seeds, note):
    """Every legacy shape gives the mean claim, the bytes and their key, per-seed values and a note."""
    claims, problems = claims_from_json(json.dumps(data), "submission.json")
    assert problems == []
    assert claims.val_bpb_text == bpb
    assert (claims.bytes_total, claims.bytes_key) == (size, key)
    assert {s: c.val_bpb_text for s, c in claims.seeds.items()} == seeds
    assert any(note in n for n in claims.schema_notes)


def test_printed_precision_is_kept():
    """1.08100 keeps its trailing zeros: claims compare at the printed precision."""
    claims, _ = claims_from_json('{"val_bpb": 1.08100}', "submission.json")
    assert claims.val_bpb_text == "1.08100"


@pytest.mark.parametrize("raw, track", [("10min_16mb", "10min_16mb"), ("non_record_16mb", "non_record_16mb"),
                                        ("non-record-16mb", "non_record_16mb"),
                                        ("non-record-unlimited-compute-16mb", "non_record_unlimited_16mb"),
                                        ("track_10min_16mb", "10min_16mb"), ("something", None)])
def test_track_spellings(raw, track):
    """The track spellings of the records are normalised."""
    assert normalise_track(raw) == track


def test_schema_v1_valid():
    """A complete schema-1 file loads without problems or legacy notes."""
    data = {"schema_version": 1, "track": "10min_16mb", "val_bpb": 1.06, "val_loss": 2.32, "bytes_total": 15_900_000,
            "seeds": {"42": {"val_bpb": 1.06, "val_loss": 2.32, "bytes_total": 15_900_000}}}
    claims, problems = claims_from_json(json.dumps(data), "submission.json")
    assert problems == [] and claims.schema_version == 1 and claims.seeds["42"].bytes_total == 15_900_000
    assert claims.is_record_track


@pytest.mark.parametrize("data, fragment", [
    ({"schema_version": 1, "track": "10min_16mb", "val_bpb": "1.06", "val_loss": 2.3, "bytes_total": 1,
      "seeds": {"1": {"val_bpb": 1.0}}}, "'val_bpb'"),
    ({"schema_version": 1, "track": "fast", "val_bpb": 1.0, "val_loss": 2.3, "bytes_total": 1,
      "seeds": {"1": {"val_bpb": 1.0}}}, "track"),
    ({"schema_version": 1, "track": "10min_16mb", "val_bpb": 1.0, "val_loss": 2.3, "bytes_total": 1, "seeds": []},
     "'seeds'"),
    ({"schema_version": 7}, "unknown schema_version"),
])
def test_schema_v1_problems(data, fragment):
    """Missing or mistyped schema-1 fields are reported."""
    _, problems = claims_from_json(json.dumps(data), "submission.json")
    assert any(fragment in p for p in problems)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"text"', "[" * 100_000])
def test_bad_json_is_a_format_error(submission, text):
    """Malformed JSON or a non-object is a SUBMISSION-FORMAT error, never an exception."""
    sub = submission({"submission.json": text})
    report = Report("x")
    load_claims(sub, report)
    assert [(f.rule, f.severity) for f in report.findings] == [("SUBMISSION-FORMAT", "error")]


@pytest.mark.parametrize("prefix, severities", [("\ufeff", ["warning"]), ("", [])])
def test_a_byte_order_mark_is_read_and_warned(submission, prefix, severities):
    """A UTF-8 byte-order mark before the JSON is read through, with a format warning; without it nothing."""
    sub = submission({"submission.json": prefix + '{"val_bpb": 1.2345}'})
    report = Report("x")
    claims = load_claims(sub, report)
    assert claims.val_bpb_text == "1.2345"
    assert [f.severity for f in report.findings if f.rule == "SUBMISSION-FORMAT"] == severities


def test_missing_file_gives_empty_claims_and_leaves_the_finding_to_layout(submission):
    """No submission.json yields empty claims; the layout check reports the missing file, once."""
    sub = submission({"train.log": "seed:1\n"})
    report = Report("x")
    claims = load_claims(sub, report)
    assert claims.val_bpb is None and report.findings == []


def test_alternative_file_name_is_noted(submission):
    """Claims from submission_<x>.json are read and the name is noted."""
    sub = submission({"submission_ternary.json": '{"val_bpb": 1.1565}'})
    claims = load_claims(sub, Report("x"))
    assert claims.val_bpb_text == "1.1565" and any("submission_ternary.json" in n for n in claims.schema_notes)

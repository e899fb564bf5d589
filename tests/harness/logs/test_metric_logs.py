"""check_metric: implied byte denominator, scored token count, train/val overlap fingerprints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.check.metric import check_metric, implied_bytes
from harness.submission.logs import parse_log
from harness.verdict import Report


def findings(report, rule=None):
    return [(f.rule, f.severity) for f in report.findings if rule is None or f.rule == rule]


def baseline(kit, tokens=62_021_632, bytes_total=151_079_963):
    loss, bpb = kit.metric_pair(2.0, tokens, bytes_total)
    return parse_log(kit.baseline_log(bpb=bpb, loss=loss, tokens=tokens), "train.log")


def test_canonical_denominator_passes(kit):
    """A run whose implied denominator is 151.08 M has no metric finding."""
    report = Report("x")
    check_metric([baseline(kit)], None, report)
    assert findings(report) == []
    assert {"BPB-BYTE-LUT", "FULL-VAL-TOKEN-COUNT", "TRAIN-VAL-OVERLAP"} <= set(report.checked)
    assert report.facts["denominators"][0]["implied_bytes"] == pytest.approx(151_079_963, abs=200)


@pytest.mark.parametrize("bytes_total, expected", [
    (157_300_000, [("BPB-BYTE-LUT", "error")]),  # Scylla-like +4.1 %
    (151_400_000, [("BPB-BYTE-LUT", "warning")]),  # +0.2 %: outside the measured band, not clearly wrong
    (151_030_000, []),  # long-sequence truncation
])
def test_denominator_band(kit, bytes_total, expected):
    """Denominators off the measured band are flagged; large offsets are errors."""
    report = Report("x")
    check_metric([baseline(kit, bytes_total=bytes_total)], None, report)
    assert findings(report) == expected


def test_implied_bytes_formula(kit):
    """implied_bytes = (val_loss/ln2) * val_tokens / val_bpb."""
    run = baseline(kit, bytes_total=151_000_000)
    assert implied_bytes(run) == pytest.approx(151_000_000, rel=1e-7)


@pytest.mark.parametrize("tokens, expected", [
    (62_021_632, []),  # VALID: the canonical count
    (62_021_000, []),  # VALID: truncated to whole sequences
    (62_017_536, []),  # VALID: truncated to a multiple of two sequences (per-rank split)
    (62_021_845, []),  # VALID: the raw stream before truncation, under one sequence more
    (47_851_520, []),  # VALID: the sp8192_caseops split's count under sp1024-named paths: the count decides
    (62_000_000, [("FULL-VAL-TOKEN-COUNT", "error")]),  # INVALID near-miss: 21,632 tokens (0.035 %) short
    (31_010_816, [("FULL-VAL-TOKEN-COUNT", "error")]),  # INVALID: half the split
    (62_030_000, [("FULL-VAL-TOKEN-COUNT", "error")]),  # INVALID near-miss: more than one sequence over
    (70_000_000, [("FULL-VAL-TOKEN-COUNT", "error")]),  # INVALID: a second pass over part of the split
])
def test_token_count(kit, tokens, expected):
    """sp1024 val_tokens must be a canonical count up to truncation; the count itself identifies the split."""
    report = Report("x")
    check_metric([baseline(kit, tokens=tokens)], None, report)
    assert findings(report, "FULL-VAL-TOKEN-COUNT") == expected


@pytest.mark.parametrize("shards, path, expected", [
    (80, "./data/datasets/fineweb10B_sp8192_caseops", []),
    (1499, "./data/datasets/datasets/fineweb10B_sp8192_caseops", [("TRAIN-VAL-OVERLAP", "error")]),
    (1499, "./data/fineweb10B_sp8192_caseops", [("TRAIN-VAL-OVERLAP", "warning")]),
])
def test_overlap_fingerprint(kit, shards, path, expected):
    """train_shards 1499 with a doubled datasets path is the #2127 leak fingerprint."""
    loss, bpb = kit.metric_pair(2.32, 47_851_520, 151_074_499)
    run = parse_log(kit.modern_log(shards=shards, datasets_dir=path, loss=loss, bpb=bpb), "t.log")
    report = Report("x")
    check_metric([run], None, report)
    assert findings(report, "TRAIN-VAL-OVERLAP") == expected


@pytest.mark.parametrize("track, severity", [(None, "warning"), ("10min_16mb", "warning"),
                                             ("non_record_16mb", "info")])
def test_local_dataset_is_not_comparable(track, severity):
    """A `fineweb:0` run skips the canonical checks and says once that the score is not comparable: a warning
    unless the claims put it on a non-record track, where other data is allowed."""
    from types import SimpleNamespace

    run = parse_log("dataset:tiny fineweb:0\nval_tokens: 18600\n"
                    "final_int8_zlib_roundtrip_exact val_loss:4.1 val_bpb:4.10560049\n", "train.log")
    report = Report("x")
    check_metric([run], SimpleNamespace(track=track), report)
    assert findings(report) == [("FULL-VAL-TOKEN-COUNT", severity)]
    assert {n.rule for n in report.not_checked} == {"BPB-BYTE-LUT", "TOKENIZER-CHANGE-PROOF", "TRAIN-VAL-OVERLAP"}


@pytest.mark.parametrize("tokens, bytes_total, expected", [
    # VALID for BPB-BYTE-LUT: a declared 2,097,152-token subset at the split's bytes per token; only the count is wrong
    (2_097_152, 5_108_900, [("FULL-VAL-TOKEN-COUNT", "error")]),
    # INVALID: the whole split with a denominator 4 % too large is still a byte-table error
    (62_021_632, 157_300_000, [("BPB-BYTE-LUT", "error")]),
])
def test_denominator_is_compared_only_on_a_whole_split(kit, tokens, bytes_total, expected):
    """The implied byte denominator is compared with the split's bytes only when the whole split was scored."""
    report = Report("x")
    check_metric([baseline(kit, tokens=tokens, bytes_total=bytes_total)], None, report)
    assert findings(report) == expected


@pytest.mark.parametrize("text, expected", [
    # INVALID: no tokenizer named, but 524,289 tokens is a part of every canonical split
    ("val_tokens:524289\nfinal_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.20000000\n",
     [("FULL-VAL-TOKEN-COUNT", "error")]),
    # VALID: no tokenizer named and a count of a whole split: nothing to say about the count
    ("val_tokens:40540160\nfinal_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.20000000\n", []),
])
def test_a_subset_is_seen_without_knowing_the_tokenizer(text, expected):
    """With no tokenizer in the paths, a token count under half of every canonical split is still a subset."""
    report = Report("x")
    check_metric([parse_log(text, "train.log")], None, report)
    assert findings(report, "FULL-VAL-TOKEN-COUNT") == expected


@pytest.mark.parametrize("line, tokens", [
    ("val_tokens:62,021,632  train_files=./data/x", 62_021_632),  # digit groups
    ("val_tokens:62021632", 62_021_632),
    ("val_tokens: 524289", 524_289),
])
def test_val_tokens_is_read_with_or_without_digit_groups(line, tokens):
    """`val_tokens:62,021,632` is the whole count, not 62."""
    assert parse_log(line + "\n", "train.log").val_tokens == tokens


@pytest.mark.parametrize("datasets_dir, tokens, bytes_total, expected", [
    # VALID: a re-tokenized sp8192 variant has its own count; the whole text is divided by its whole bytes
    ("./data/datasets/fineweb10B_sp8192_casefold_v2", 36_286_464, 151_080_261, []),
    # INVALID: the same variant divided by a tenth too many bytes: the denominator is still compared
    ("./data/datasets/fineweb10B_sp8192_casefold_v2", 36_286_464, 166_000_000,
     [("TOKENIZER-CHANGE-PROOF", "error")]),
    # INVALID near-miss: the stock sp8192 export with the variant's count is a subset of the stock split
    ("./data/datasets/fineweb10B_sp8192", 36_286_464, 135_200_000, [("FULL-VAL-TOKEN-COUNT", "error")]),
    # VALID: the stock CaseOps export under its long published name keeps its canonical count
    ("./data/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved", 47_851_520, 151_074_499, []),
    # INVALID: that export scored on half its tokens
    ("./data/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved", 23_925_760, 75_537_000,
     [("FULL-VAL-TOKEN-COUNT", "error")]),
])
def test_the_export_read_decides_which_token_count_applies(kit, datasets_dir, tokens, bytes_total, expected):
    """Canonical token counts apply to the published exports only; another export is judged by its bytes."""
    loss, bpb = kit.metric_pair(2.4, tokens, bytes_total)
    run = parse_log(kit.modern_log(datasets_dir=datasets_dir, tokens=tokens, loss=loss, bpb=bpb), "t.log")
    report = Report("x")
    check_metric([run], None, report)
    assert [f for f in findings(report) if f[0] != "TRAIN-VAL-OVERLAP"] == expected


@pytest.mark.parametrize("score_line, expected", [
    # VALID: the score line counts the whole split
    ("final_eval val_loss:2.00000000 val_bpb:{bpb} tokens:62021632", []),
    # VALID: one rank's share of the split (8 ranks) printed by rank 0
    ("final_eval val_loss:2.00000000 val_bpb:{bpb} tokens:7752704", []),
    # INVALID: the score covers 2,048 tokens while the loader line names the whole split: a subset, and no byte
    # denominator mixed from the two
    ("final_eval val_loss:3.66000000 val_bpb:1.98000000 tokens:2048", [("FULL-VAL-TOKEN-COUNT", "error")]),
])
def test_tokens_the_score_line_counts(kit, score_line, expected):
    """A score line's own token count decides what it covers; a tiny one is a subset, not a wrong byte table."""
    loss, bpb = kit.metric_pair(2.0, 62_021_632, 151_079_963)
    text = kit.baseline_log(bpb=bpb, loss=loss, tokens=62_021_632)
    run = parse_log(text + score_line.format(bpb=f"{bpb:.8f}") + "\n", "train.log")
    report = Report("x")
    check_metric([run], None, report)
    assert findings(report) == expected, [f.message for f in report.findings]


@pytest.mark.parametrize("claimed, decided", [
    (1.0598945, True),  # VALID: near the merged frontier
    (0.97, True),  # near-miss: below every merged record, but within reach
    (0.58, False),  # INVALID: far below anything legal (a SLOT-style claim): the check cannot vouch for it
    (0.0165, False),  # INVALID: an n-gram-cache-style claim
])
def test_implausible_claim_is_not_passed(kit, claimed, decided):
    """A claimed FineWeb val_bpb far below the best merged record makes the check undecided, never a pass."""
    report = Report("x")
    check_metric([parse_log(kit.modern_log(), "t.log")], SimpleNamespace(val_bpb=claimed, track="10min_16mb"), report)
    assert (not any(c.startswith("metric: the claimed val_bpb") for c in report.could_not_check)) == decided

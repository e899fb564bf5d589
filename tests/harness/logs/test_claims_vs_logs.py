"""check_claims: claimed numbers against the logs, with the explanation a reviewer would give."""

from __future__ import annotations

import json

import pytest

from harness.check.claims import check_claims, equal_at
from harness.verdict import Report
from harness.submission.logs import parse_log
from harness.submission.manifest import claims_from_json


def run(name: str, bpb: str, loss: str = "2.00000000", seed: str | None = None, extra: str = ""):
    seed_line = f"seed:{seed}\n" if seed else ""
    return parse_log(f"{seed_line}{extra}final_int8_zlib_roundtrip_exact val_loss:{loss} val_bpb:{bpb}\n", name)


def claims(**data):
    return claims_from_json(json.dumps(data), "submission.json")[0]


def sig(report: Report):
    return [(f.severity, f.message) for f in report.findings if f.rule == "SIGNIFICANCE"]


@pytest.mark.parametrize("claim, value, places, expected", [
    ("1.0812", "1.08124", None, True), ("1.0812", "1.08125", None, True), ("1.0813", "1.08125", None, True),
    ("1.0812", "1.08131", None, False), ("1.19290000", "1.1929", 4, True), ("1.1929", "1.19295", None, True),
])
def test_equal_at_printed_precision(claim, value, places, expected):
    """Rounded or truncated comparison at the claim's precision (or the log's, when coarser)."""
    from decimal import Decimal
    assert equal_at(claim, Decimal(value), places) is expected


def test_mean_of_all_logs_matches():
    """A claim equal to the mean of all logs gives no finding and fills the per-seed table."""
    logs = [run("train_seed1.log", "1.10000000", seed="1"), run("train_seed2.log", "1.10200000", seed="2")]
    report = Report("x")
    result = check_claims(claims(val_bpb=1.101), logs, report)
    assert result["val_bpb"].kind == "all" and sig(report) == []
    assert [r["seed"] for r in report.facts["seeds"]] == ["1", "2"]
    assert report.facts["seeds"][0]["final_tag"] == "final_int8_zlib_roundtrip_exact"


def test_mismatch_is_unbacked_with_numbers():
    """A claim that equals no log, subset or mean is an unbacked SIGNIFICANCE warning naming the logs' mean."""
    report = Report("x")
    result = check_claims(claims(val_bpb=1.15015359), [run("train.log", "1.16660881")], report)
    ((severity, message),) = sig(report)
    assert severity == "warning" and result["val_bpb"].unbacked
    assert message == "val_bpb: claim 1.15015359 equals no log; logs mean 1.16660881"


@pytest.mark.parametrize("claim, logs, extra, severity", [
    # VALID: the mean of 1.20670333 written as 1.20667: off by 0.00003, a slip (per-seed values all match)
    (dict(val_bpb=1.20667, seed_results={"1": {"val_bpb": 1.2061}, "2": {"val_bpb": 1.2069}}),
     [("train_seed1.log", "1.20610000", "1"), ("train_seed2.log", "1.20690000", "2")], "", "explained"),
    # VALID: the claim is printed under a key the grammar does not read
    (dict(val_bpb=2.48898442), [("train.log", "2.61000000", None)], "eval_bits_per_byte=2.48898442865\n",
     "explained"),
    # INVALID: 0.01 better than anything logged, and no per-seed values to back it
    (dict(val_bpb=1.19670), [("train_seed1.log", "1.20610000", "1"), ("train_seed2.log", "1.20690000", "2")], "",
     "unbacked"),
    # INVALID near-miss: 0.0007 off the mean (0.0003 under the best seed): more than a slip
    (dict(val_bpb=1.20580), [("train_seed1.log", "1.20610000", "1"), ("train_seed2.log", "1.20690000", "2")], "",
     "unbacked"),
])
def test_a_headline_mismatch_the_logs_still_explain_is_a_warning(claim, logs, extra, severity):
    """A headline val_bpb equal to no final score is unbacked unless the logs explain it: printed under another key,
    every per-seed claim equal to its log, or within 0.0002 of the logs' mean."""
    report = Report("x")
    result = check_claims(claims(**claim), [run(name, bpb, seed=seed, extra=extra) for name, bpb, seed in logs], report)
    assert [s for s, m in sig(report) if m.startswith("val_bpb:")] == ["warning"]
    assert result["val_bpb"].unbacked == (severity == "unbacked")


def test_single_seed_match_is_a_warning():
    """A claim that equals one seed only (not the mean) is a warning naming the seed."""
    logs = [run("train_seed1.log", "1.20000000", seed="1"), run("train_seed2.log", "1.21000000", seed="2"),
            run("train_seed3.log", "1.23000000", seed="3")]
    report = Report("x")
    result = check_claims(claims(val_bpb=1.23), logs, report)
    assert result["val_bpb"].kind == "single"
    ((severity, message),) = sig(report)
    assert severity == "warning" and "seed 3's value" in message and "not the 3-log mean" in message


def test_subset_by_file_name():
    """A claim equal to the mean of the `original` logs is explained as that subset."""
    logs = [run("train_seed1_original.log", "1.06100000", seed="1"), run("train_seed2_original.log", "1.06200000",
            seed="2"), run("train_seed1_rerun.log", "1.07000000", seed="1"),
            run("train_seed2_rerun.log", "1.08000000", seed="2")]
    result = check_claims(claims(val_bpb=1.0615), logs, Report("x"))
    assert result["val_bpb"].kind == "subset" and "original" in result["val_bpb"].detail


def test_pre_rounded_mean():
    """A mean of values rounded first (04-05 style) is an info, not a mismatch."""
    logs = [run(f"train_seed{i}.log", v, seed=str(i)) for i, v in enumerate(["1.085535", "1.086644", "1.084626"])]
    report = Report("x")
    result = check_claims(claims(val_bpb=1.08560), logs, report)
    assert result["val_bpb"].kind in ("pre_rounded", "all")


def test_pre_quant_step_claim_is_unbacked():
    """A claim equal only to a training-time eval line is a pre-quantization number that no final score backs."""
    log = parse_log("step:34000/34000 val_loss:2.0413 val_bpb:1.2266 train_time:1ms\n"
                    "final_INT7_zlib_roundtrip val_loss:2.06 val_bpb:1.2353\n", "train.log")
    report = Report("x")
    result = check_claims(claims(val_bpb=1.2266), [log], report)
    assert result["val_bpb"].kind == "pre_quant_step" and result["val_bpb"].unbacked
    assert sig(report)[0][0] == "warning"


@pytest.mark.parametrize("extra, unbacked", [
    ({}, True),  # INVALID: the headline is a training-time eval and nothing else states the final score
    ({"int7_zlib_val_bpb": 1.2353}, False),  # VALID near-miss: the final score sits under another key
    ({"quant_val_bpb": 1.2354}, True),  # INVALID near-miss: another key, a figure no run ends with
    ({"note": "1.235"}, True),  # INVALID: three decimals are too few to tell the final score from a chance match
])
def test_final_score_under_another_key_makes_the_headline_a_mislabel(extra, unbacked):
    """A headline key holding a pre-quantization eval is explained when another key gives the final score."""
    log = parse_log("step:34000/34000 val_loss:2.0413 val_bpb:1.2266 train_time:1ms\n"
                    "final_INT7_zlib_roundtrip val_loss:2.06 val_bpb:1.23530000\n", "train.log")
    report = Report("x")
    result = check_claims(claims(val_bpb=1.2266, **extra), [log], report)
    assert result["val_bpb"].unbacked == unbacked and sig(report)[0][0] == "warning", sig(report)


def test_non_final_tag_mean():
    """A claim equal to the mean of an earlier tag present in every log (diverged last line) is explained."""
    a = parse_log("final_int6_sliding_window val_loss:2.5 val_bpb:1.08938974\n"
                  "final_int6_ttt val_loss:3.1 val_bpb:1.33603200\n", "train_seed42.log")
    b = parse_log("final_int6_sliding_window val_loss:2.5 val_bpb:1.08982552\n", "train_seed314.log")
    result = check_claims(claims(val_bpb=1.08960763), [a, b], Report("x"))
    assert result["val_bpb"].kind == "non_final" and "final_int6_sliding_window" in result["val_bpb"].detail


@pytest.mark.parametrize("headline, severity", [(1.08, "warning"), (1.07, "warning")])
def test_per_seed_mismatch(headline, severity):
    """A per-seed claim that differs from that seed's log is a warning naming both values, whether or not the
    headline val_bpb is backed by the logs."""
    logs = [run("train_seed42.log", "1.08000000", seed="42")]
    report = Report("x")
    check_claims(claims(val_bpb=headline, seed_results={"42": {"val_bpb": 1.0700}}), logs, report)
    assert any(s == severity and "seed 42 claims val_bpb 1.07" in m for s, m in sig(report))


def test_val_loss_holding_bpb_is_explained():
    """A val_loss claim equal to the logs' bpb is reported as a key holding the wrong quantity."""
    logs = [run("train.log", "1.14276000", loss="1.93000000")]
    report = Report("x")
    check_claims(claims(val_loss=1.14276), logs, report)
    assert any("holds a bpb" in m for _, m in sig(report))


def test_no_logs_is_a_warning():
    """A claim with no log behind it is a warning."""
    report = Report("x")
    result = check_claims(claims(val_bpb=1.1), [], report)
    assert result["val_bpb"].kind == "no_logs" and sig(report)[0][0] == "warning"


def test_duplicate_logs_fold():
    """A log duplicated under another name counts once."""
    logs = [run("train.log", "1.10000000", seed="1"), run("train_seed1.log", "1.10000000", seed="1"),
            run("train_seed2.log", "1.20000000", seed="2")]
    report = Report("x")
    result = check_claims(claims(val_bpb=1.15), logs, report)
    assert result["val_bpb"].kind == "all"
    assert report.facts["seeds"][1]["duplicate_of"] == "train.log"


@pytest.mark.parametrize("tail, claim, expected", [
    # VALID: the claim is the last figure of a mixer the grammar does not know: a warning that names the line
    ("ppm_mix_bpb:0.832925 elapsed:410s\n", 0.832925, ("warning", "`ppm_mix_bpb:0.832925` figure at line 2")),
    # INVALID: no figure anywhere in the log equals the claim
    ("ppm_mix_bpb:0.832925 elapsed:410s\n", 0.8129, ("warning", "equals no log")),
])
def test_a_claim_equal_to_an_unread_bpb_figure_is_a_warning(tail, claim, expected):
    """A claim that equals a bpb figure on a line the metric grammar does not read is named, not called unsupported."""
    log = parse_log("final_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.10000000\n" + tail, "train.log")
    report = Report("x")
    check_claims(claims(val_bpb=claim), [log], report)
    ((severity, message),) = sig(report)
    assert severity == expected[0] and expected[1] in message


@pytest.mark.parametrize("text, expected", [
    # VALID: a log in a dialect the grammar does not read, whose `val_bpb=` figure is the claim
    ("step=60000000 bpb=1.912753\nval_bpb=1.91070694\n", ("warning", "`val_bpb:1.91070694` figure at line 2")),
    # INVALID: a placeholder log with no score at all
    ("PENDING: results will be added after the run\n", ("warning", "no final score and no bpb figure equal to it")),
    # INVALID: an empty log file
    ("", ("warning", "no final score and no bpb figure equal to it")),
])
def test_a_claim_no_shipped_log_shows_is_unsupported(text, expected):
    """With logs shipped but no final score in them, a claim equal to no bpb figure in them is unsupported."""
    report = Report("x")
    check_claims(claims(val_bpb=1.91070694), [parse_log(text, "train.log")], report)
    ((severity, message),) = sig(report)
    assert severity == expected[0] and expected[1] in message


def test_a_claim_equal_to_the_mean_of_an_unread_per_seed_figure_is_a_warning():
    """Three seed logs ending in a figure the grammar does not read, whose mean is the claim: a warning, not an error."""
    logs = [parse_log(f"step:1 train_loss:3.0\nQuantized BPB (no XSA): {v}\n", f"train_seed{i}.log")
            for i, v in enumerate(("1.0200", "1.0300", "1.0400"))]
    report = Report("x")
    check_claims(claims(val_bpb=1.03), logs, report)
    ((severity, message),) = sig(report)
    assert severity == "warning" and "mean of the last `Quantized BPB` figure of each of the 3 logs" in message


def _launcher(name: str, seed: str, score: str) -> object:
    return parse_log(f"[STAGE 4/4] run=ab12 | 8xH100 | hparams: {{'seed': {seed}}}\n"
                     f"[RESULT] run=ab12 | score={score} | size=15,115,793B | fits 16MB | OK | 1070s\n", name)


@pytest.mark.parametrize("claimed, expected", [
    # VALID: launcher summaries whose per-seed scores average to the claim back it (a warning: no score line the
    # grammar reads)
    (1.1899, False),
    # INVALID: the same summaries, a claim none of them or their mean gives
    (1.1850, True),
])
def test_launcher_summary_scores_back_a_claim_only_by_value(claimed, expected):
    """`[RESULT] ... score=` lines back a claim only when their mean equals it at its printed precision."""
    logs = [_launcher("train_seed1337.log", "1337", "1.1900"), _launcher("train_seed42.log", "42", "1.1908"),
            _launcher("train_seed7.log", "7", "1.1888")]
    report = Report("x")
    result = check_claims(claims(val_bpb=claimed), logs, report)
    assert [s for s, _m in sig(report)] == ["warning"] and result["val_bpb"].unbacked == expected


def _cumulative(seeds: list[tuple[str, str]]) -> list:
    """Launcher logs each holding its own seed's summary and then the summaries of the seeds run after it."""
    out = []
    for i, (seed, _score) in enumerate(seeds):
        text = f"[STAGE 1/4] run=r{i} | hparams: {{'seed': {seed}}}\n" + "".join(
            f"[RESULT] run=r{j} | score={s} | size=15,115,793B | OK\n" for j, (_x, s) in enumerate(seeds) if j >= i)
        out.append(parse_log(text, f"train_seed{seed}.log"))
    return out


@pytest.mark.parametrize("per_seed, claimed, expected", [
    # VALID: each seed's own score is in its log (later seeds' lines follow it), the claim is their mean
    ({"1337": 1.1900, "42": 1.1908, "7": 1.1888}, 1.1899, False),
    # INVALID: a per-seed value that its seed's log does not print
    ({"1337": 1.1900, "42": 1.1901, "7": 1.1888}, 1.1896, True),
    # INVALID near-miss: every per-seed value printed, but the headline is not their mean
    ({"1337": 1.1900, "42": 1.1908, "7": 1.1888}, 1.1850, True),
])
def test_per_seed_values_printed_in_their_own_logs_back_their_mean(per_seed, claimed, expected):
    """A claim that is the mean of per-seed values each printed in its seed's log is backed by the logs."""
    logs = _cumulative([("1337", "1.1900"), ("42", "1.1908"), ("7", "1.1888")])
    report = Report("x")
    result = check_claims(claims(val_bpb=claimed, seed_results={s: {"val_bpb": v} for s, v in per_seed.items()}), logs,
                          report)
    assert result["val_bpb"].unbacked == expected


@pytest.mark.parametrize("key", ["seed_scores", "val_bpb_seeds", "seed_bpbs"])
def test_parallel_seed_lists(key):
    """Per-seed scores given as a list beside `seeds` are paired with the seeds, whatever the list's key."""
    parsed = claims(val_bpb=1.2, seeds=[1337, 45], **{key: [1.12684, 1.12704]})
    assert {s: c.val_bpb_text for s, c in parsed.seeds.items()} == {"1337": "1.12684", "45": "1.12704"}

"""check_budgets: TRAIN-TIME-600, EVAL-TIME-600 and HARDWARE from the logs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.check.budgets import check_budgets
from harness.check.claims import check_claims
from harness.submission.manifest import claims_from_json
from harness.verdict import Report
from harness.submission.logs import parse_log

RECORD = SimpleNamespace(track="10min_16mb")


def findings(report, rule):
    return [(f.severity, f.message) for f in report.findings if f.rule == rule]


@pytest.mark.parametrize("train_ms, hessian, expected", [
    (599_592, 4.7, ["warning"]),  # #1855: loop + Hessians 604.3 s
    (588_000, 3.5, []),
    (599_600, 30.0, ["error"]),
    (601_153, 0.0, ["error"]),  # loop itself over the cap
])
def test_train_time(kit, train_ms, hessian, expected):
    """Loop over 600 s, or loop + Hessians over 600 s by more than a few seconds, is an error."""
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(train_ms=train_ms, hessian_s=hessian), "t.log")], RECORD, report)
    assert [s for s, _ in findings(report, "TRAIN-TIME-600")] == expected
    assert "TRAIN-TIME-600" in report.checked


def test_hessian_message_has_numbers(kit):
    """The Hessian-margin warning gives loop, Hessian and total seconds."""
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(), "t.log")], RECORD, report)
    assert "loop 599.6 s + GPTQ Hessians on training data 4.7 s = 604.3 s" in findings(report, "TRAIN-TIME-600")[0][1]


@pytest.mark.parametrize("hyper", ["  force_stop_step: 4000", "  max_wallclock_seconds: 0"])
@pytest.mark.parametrize("train_ms, loop_error", [
    (590_000, False),  # VALID: no wall-clock cap, but the logged loop fits in 600 s
    (700_000, True),  # INVALID: no wall-clock cap and the loop ran 700 s
])
def test_step_count_stop(kit, hyper, train_ms, loop_error):
    """A step-count stop is a warning; the logged loop time decides whether the budget was broken."""
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(extra_hyper=hyper, train_ms=train_ms), "t.log")], RECORD, report)
    found = findings(report, "TRAIN-TIME-600")
    assert any(sev == "warning" and "not on the wall-clock cap" in msg or "no wall-clock cap" in msg
               for sev, msg in found)
    assert any(sev == "error" and "training loop took" in msg for sev, msg in found) == loop_error


def test_unknown_track_downgrades_to_warning(kit):
    """With no track in the claims, a budget breach is a warning."""
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(train_ms=700_000), "t.log")], None, report)
    assert [s for s, _ in findings(report, "TRAIN-TIME-600")] == ["warning"]


def test_non_record_track_is_not_checked(kit):
    """Off the record track the time and hardware budgets are listed as not checked."""
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(train_ms=900_000), "t.log")], SimpleNamespace(track="non_record_16mb"),
                  report)
    assert {n.rule for n in report.not_checked} == {"TRAIN-TIME-600", "EVAL-TIME-600", "HARDWARE"}
    assert report.findings == []


@pytest.mark.parametrize("eval_s, prequant, expected", [(508.8, None, []), (650.0, None, ["error"]),
                                                         (300.0, 523, ["error"])])
def test_eval_time(kit, eval_s, prequant, expected):
    """Scored evaluation over 600 s (pre-quantization TTT included) is an error."""
    text = kit.modern_log(eval_s=eval_s)
    if prequant:
        text += f"prequant_ttt:done total_time={prequant}s\n"
    report = Report("x")
    check_budgets([parse_log(text, "t.log")], RECORD, report)
    assert [s for s, _ in findings(report, "EVAL-TIME-600")] == expected


@pytest.mark.parametrize("gpu, world, expected", [
    ("NVIDIA H100 80GB HBM3", 8, []),
    ("NVIDIA B200", 8, ["error"]),
    ("NVIDIA H100 PCIe", 8, ["error"]),
    ("NVIDIA H100 80GB HBM3", 4, ["error"]),
])
def test_hardware(kit, gpu, world, expected):
    """Record-track logs showing other GPUs or another world size are errors."""
    report = Report("x")
    check_budgets([parse_log(kit.baseline_log(gpu=gpu, world=world), "t.log")], RECORD, report)
    assert [s for s, _ in findings(report, "HARDWARE")] == expected


def test_hardware_unknown_is_a_warning():
    """No GPU names and no world size: hardware cannot be determined."""
    report = Report("x")
    check_budgets([parse_log("final_sliding val_loss:2 val_bpb:1.2\n", "t.log")], RECORD, report)
    assert findings(report, "HARDWARE")[0][0] == "warning"


def test_no_logs_skips_everything():
    """Without run logs every budget rule is listed as not checked."""
    report = Report("x")
    check_budgets([parse_log("torch==2.0\n", "pip.txt")], RECORD, report)
    assert len(report.not_checked) == 3 and report.checked == []


TWO_PASSES = ("world_size:8\nstep:7000/20000 train_time:590000ms\nstopping_early: wallclock_cap\n"
              "final_int6_sliding_window_exact val_loss:2.00980000 val_bpb:1.19028660 eval_time:53400ms\n"
              "final_int6_sliding_window_s64_exact val_loss:2.00660000 val_bpb:1.18840000 eval_time:846500ms\n")


@pytest.mark.parametrize("claim, severities", [
    ("1.19028660", ["warning"]),  # VALID: the claim is the 53 s pass; the 846 s stride-64 pass is a diagnostic
    ("1.18840000", ["error"]),  # INVALID: the claim is the 846 s pass itself
])
def test_eval_time_times_the_pass_the_claim_equals(claim, severities):
    """The evaluation budget applies to the pass the claimed val_bpb was read from, not to a later extra pass."""
    run = parse_log(TWO_PASSES, "train.log")
    claims = claims_from_json(json.dumps({"val_bpb": float(claim), "track": "10min_16mb"}), "submission.json")[0]
    report = Report("x")
    compared = check_claims(claims, [run], report)
    check_budgets([run], claims, report, compared["val_bpb"].scored)
    assert [s for s, _ in findings(report, "EVAL-TIME-600")] == severities


@pytest.mark.parametrize("declared, gpu, severity", [
    ("8xH100 PCIe", None, "error"),  # INVALID: the author states PCIe and the logs do not name the GPUs
    ("2x H100 80GB", None, "error"),  # INVALID: two GPUs declared
    ("8xH100 SXM", None, None),  # VALID: the challenge's hardware
    ("8×H100 80GB HBM3", None, None),  # VALID: the SXM part by its memory
    ("8xH100 PCIe", "NVIDIA H100 80GB HBM3", "warning"),  # near-miss: the logs list eight SXM GPUs by name
])
def test_declared_hardware(kit, declared, gpu, severity):
    """Hardware that submission.json declares other than 8xH100 SXM is a HARDWARE error on the record track."""
    text = kit.baseline_log(gpu=gpu) if gpu else kit.modern_log()
    claims = claims_from_json(json.dumps({"val_bpb": 1.2, "track": "10min_16mb", "hardware": declared}),
                              "submission.json")[0]
    report = Report("x")
    check_budgets([parse_log(text, "t.log")], claims, report)
    found = [s for s, m in findings(report, "HARDWARE") if "declares" in m]
    assert found == ([severity] if severity else [])


@pytest.mark.parametrize("extra, severity", [
    ({"eval_time_s": 627.3}, "error"),  # INVALID: the author times the claimed result's evaluation at 627 s
    ({"eval_time_ms": 612_000}, "error"),  # INVALID: the same in milliseconds
    ({"eval_time_ms_max": 519_029}, None),  # VALID: the slowest seed's 519 s, in milliseconds
    ({"runs": {"stack": {"val_bpb": 1.2, "eval_time_seconds": 640.0}}}, "error"),  # INVALID: the claimed run's entry
    ({"runs": {"other": {"val_bpb": 1.3, "eval_time_seconds": 640.0}}}, None),  # near-miss: another run's entry
    ({"eval_time_s": 590.0}, None),  # VALID: inside the budget
    ({"eval_time_s": 627.3, "record_claim": False}, "warning"),  # declared non-record: reported, not enforced
    ({"eval_stride": 640}, None),  # near-miss: a stride is not a time
])
def test_declared_eval_time(kit, extra, severity):
    """An evaluation time over 600 s that submission.json declares for the claimed result is an EVAL-TIME-600 finding."""
    claims = claims_from_json(json.dumps({"val_bpb": 1.2, "track": "10min_16mb", **extra}), "submission.json")[0]
    report = Report("x")
    check_budgets([parse_log(kit.modern_log(), "t.log")], claims, report)
    found = [s for s, m in findings(report, "EVAL-TIME-600") if "declares" in m]
    assert found == ([severity] if severity else [])


@pytest.mark.parametrize("extra, severity", [
    ({}, "error"),  # INVALID: a record claim on one A40
    ({"record_claim": False}, "warning"),  # the author says it claims no record: reported as a warning
    ({"non_record": True}, "warning"),
    ({"non_record": False}, "error"),  # near-miss: the flag says it is a record claim
    ({"name": "Non-record: width sweep on one GPU"}, "warning"),
    ({"name": "Record attempt after non-record sweeps"}, "error"),  # near-miss: the words elsewhere in the name
])
def test_declared_non_record_in_record_track(kit, extra, severity):
    """A run filed in the record track that declares it claims no record gets its budget breaches as warnings."""
    claims = claims_from_json(json.dumps({"val_bpb": 1.2, "track": "10min_16mb", **extra}), "submission.json")[0]
    report = Report("x")
    check_budgets([parse_log(kit.baseline_log(gpu="NVIDIA A40", world=1), "t.log")], claims, report)
    assert {s for s, _ in findings(report, "HARDWARE")} == {severity}

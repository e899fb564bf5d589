"""Findings about a log outside the set the claim rests on are warnings; about a claimed run, errors stand."""

from __future__ import annotations

import json
import re

import pytest

from harness.check.claim_scope import scope_to_claim
from harness.check.claims import check_claims
from harness.check.pipeline import check_path
from harness.submission.logs import parse_log
from harness.submission.manifest import claims_from_json
from harness.verdict import Report
from rules.finding import Finding
from tests.conftest import BASELINE_LOG, LEGAL_SCRIPT

OVER_MODEL = 16_500_000


def _log(seed: str, bpb: float, model_bytes: int = 15815847) -> str:
    code = len(LEGAL_SCRIPT.encode())
    return BASELINE_LOG.replace("15815847", str(model_bytes)).format(
        seed=seed, code_bytes=code, total=model_bytes + code, loss=2.07, bpb=bpb)


def _cap(report):
    return [(f.severity, f.file, f.message) for f in report.findings if f.rule == "ARTIFACT-CAP-16MB"]


def test_an_over_cap_tuning_log_outside_the_claim_is_a_warning(legal_submission):
    """VALID: an extra tuning run over the cap, not part of the claimed three-seed mean, is a warning naming it."""
    (legal_submission / "tuning_wd.log").write_text(_log("99", 1.2301, OVER_MODEL))
    found = _cap(check_path(legal_submission))
    assert [(sev, file) for sev, file, _ in found] == [("warning", "tuning_wd.log")]
    assert "not among those behind the claimed val_bpb" in found[0][2]


def test_an_over_cap_claimed_seed_is_still_an_error(legal_submission):
    """INVALID: the same over-cap figures in a log the claimed mean rests on stay an error."""
    log = legal_submission / "train_seed42.log"
    log.write_text(log.read_text().replace("15815847", str(OVER_MODEL)).replace(
        f"size int8+zlib: {15815847 + len(LEGAL_SCRIPT.encode())}",
        f"size int8+zlib: {OVER_MODEL + len(LEGAL_SCRIPT.encode())}"))
    found = _cap(check_path(legal_submission))
    assert ("error", "train_seed42.log") in [(sev, file) for sev, file, _ in found]


def test_an_over_cap_side_run_beside_a_single_claimed_log_is_a_warning(legal_submission):
    """VALID: the claim is one log's value; an over-cap side run with another score is a warning naming the log."""
    for extra in ("train_seed7.log", "train_seed1337.log"):
        (legal_submission / extra).unlink()
    claimed = (legal_submission / "train_seed42.log").read_text()
    (legal_submission / "screen_a6000.log").write_text(_log("5", 1.3105, OVER_MODEL))
    json_path = legal_submission / "submission.json"
    data = json.loads(json_path.read_text())
    data["val_bpb"] = float(re.findall(r"val_bpb:([0-9.]+)", claimed)[-1])
    json_path.write_text(json.dumps(data))
    found = _cap(check_path(legal_submission))
    assert [(sev, file) for sev, file, _ in found] == [("warning", "screen_a6000.log")]


def _dumped(seed: str, matrix_lr: str, model_bytes: int, bpb: str) -> str:
    settings = {"seed": seed, "matrix_lr": matrix_lr, "num_layers": "11", "model_dim": "512", "train_seq_len": "2048",
                "warmdown_iters": "3500", "world_size": "8"}
    return ("Hyperparameters:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items())
            + f"seed:{seed}\nstopping_early: wallclock_cap train_time:590000ms step:7000/20000\n"
            f"Serialized model int6+lzma: {model_bytes} bytes\nCode size: 1000 bytes\n"
            f"Total submission size int6+lzma: {model_bytes + 1000} bytes\n"
            f"final_int6_roundtrip_exact val_loss:2.00000000 val_bpb:{bpb}\n")


@pytest.mark.parametrize("other_lr, severity", [
    ("0.025", "error"),  # INVALID: a fourth seed of the same configuration over the cap: part of the submission
    ("0.030", "warning"),  # VALID: a tuning run with another learning rate, over the cap, outside the claim
])
def test_a_log_of_the_claimed_configuration_is_not_a_side_run(other_lr, severity):
    """Findings about a log outside the claimed subset stand when it prints the claimed runs' configuration."""
    logs = [parse_log(_dumped(s, "0.025", 15_900_000, b), f"train_seed{s}.log")
            for s, b in (("1", "1.10000000"), ("2", "1.10200000"), ("3", "1.10400000"))]
    logs.append(parse_log(_dumped("4", other_lr, 16_100_000, "1.09000000"), "train_seed4.log"))
    claims = claims_from_json(json.dumps({"val_bpb": 1.102, "track": "10min_16mb"}), "submission.json")[0]
    report = Report("x")
    compared = check_claims(claims, logs, report)
    assert compared["val_bpb"].kind == "subset"
    report.add(Finding("ARTIFACT-CAP-16MB", "error", "seed 4 over the cap", file="train_seed4.log", source="log"))
    scope_to_claim(compared, report, logs)
    assert [f.severity for f in report.findings if f.rule == "ARTIFACT-CAP-16MB"] == [severity]


@pytest.mark.parametrize("claim_shift, severity", [
    (0.0, "error"),  # INVALID: the claim is the logs' mean: an over-budget loop in them is the claimed run's
    (-0.02, "warning"),  # no log shows the claim (unbacked): the logs' runs are not shown to be the claimed one
])
def test_budget_breach_in_logs_that_do_not_back_the_claim(legal_submission, claim_shift, severity):
    """An over-budget loop is an error in the runs behind the claim, a warning where no log backs the claim at all."""
    for log in legal_submission.glob("train_seed*.log"):
        log.write_text(re.sub(r"train_time:\d+ms", "train_time:640000ms", log.read_text()))
    json_path = legal_submission / "submission.json"
    data = json.loads(json_path.read_text())
    data["val_bpb"] = round(data["val_bpb"] + claim_shift, 8)
    data["seeds"] = {s: {"val_bpb": round(v["val_bpb"] + claim_shift, 8)} for s, v in data["seeds"].items()}
    json_path.write_text(json.dumps(data))
    report = check_path(legal_submission)
    found = {f.severity for f in report.findings if f.rule == "TRAIN-TIME-600"}
    assert found == {severity}
    assert any(f.rule == "SIGNIFICANCE" and "equals no log" in f.message for f in report.findings) == (claim_shift != 0)


_DUMP = ("Hyperparameters:\n  num_layers: 11\n  model_dim: 512\n  lr: 0.02\n  warmup: 20\n  seq_len: 2048\n"
         "  batch: 786432\n{echo}final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:{bpb}\n")


@pytest.mark.parametrize("echo_claimed, echo_other, severity", [
    ("qk_gain_init:5.30 ttt_lr:0.005\n", "", "warning"),  # a backup run with other echoed settings: a side run
    ("", "", "error"),  # INVALID: the same dump and no other setting: another seed of the claimed run
])
def test_side_run_told_by_every_printed_setting(echo_claimed, echo_other, severity):
    """A log whose dump equals the claimed run's but whose echoed settings differ is a side run; equal ones are a seed."""
    from harness.check.claims import Comparison
    claimed = parse_log(_DUMP.format(echo=echo_claimed, bpb="1.08017020"), "train.log")
    other = parse_log(_DUMP.format(echo=echo_other, bpb="1.08045510"), "full_log_backup.txt")
    report = Report("x")
    report.facts["seeds"] = [{"log": "train.log"}, {"log": "full_log_backup.txt"}]
    report.add(Finding("EVAL-TIME-600", "error", "scored evaluation took 925.2 s", file="full_log_backup.txt",
                       source="log"))
    scope_to_claim({"val_bpb": Comparison("single", "one log", ["train.log"])}, report, [claimed, other])
    assert [f.severity for f in report.findings] == [severity]

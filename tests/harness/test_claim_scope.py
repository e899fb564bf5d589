"""Findings about a log outside the set the claim rests on are warnings; about a claimed run, errors stand."""

from __future__ import annotations

import json
import re

from harness.check.pipeline import check_path
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

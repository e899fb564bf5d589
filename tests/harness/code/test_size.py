"""harness.check.size: per-seed cap on shipped bytes, wrapper accounting, uncounted code and artifact files."""

from __future__ import annotations

import lzma
import random

import pytest

from harness.challenge import ARTIFACT_CAP_BYTES as CAP_BYTES
from harness.check.size import check_size
from harness.submission.code import load_code
from harness.verdict import Report

from .conftest import FakeRun

SCRIPT = "print('x')\n" * 1000  # 11,000 bytes


def _check(sub, runs, strict=False):
    report = Report(str(sub.root))
    check_size(sub, load_code(sub), runs, report, strict_size=strict)
    return report


def _rules(report):
    return sorted((f.rule, f.severity, f.seed) for f in report.findings)


@pytest.mark.parametrize("model, compressed, strict, expected", [
    (CAP_BYTES - 20_000, None, False, []),
    (CAP_BYTES - 5_000, 3_000, False, [("CODE-COUNTING", "warning", "42")]),
    (CAP_BYTES - 5_000, 3_000, True, [("CODE-COUNTING", "error", "42")]),
    (CAP_BYTES - 1_000, 3_000, False, [("ARTIFACT-CAP-16MB", "error", "42")]),
    (CAP_BYTES - 5_000, None, False, [("ARTIFACT-CAP-16MB", "error", "42")]),
])
def test_cap_verdicts(submission, model, compressed, strict, expected):
    """Under cap passes; over as shipped but under with the logged wrapper warns (errors when strict); else error."""
    sub = submission({"train_gpt.py": SCRIPT})
    run = FakeRun("train_seed42.log", "42", model_bytes=model, code_size_bytes=len(SCRIPT),
                  code_size_compressed_bytes=compressed)
    report = _check(sub, [run], strict)
    assert _rules(report) == expected
    row = report.facts["size"]["seeds"][0]
    assert row["shipped_total"] == model + len(SCRIPT)


def test_over_cap_message_names_seed_and_bytes(submission):
    """The cap error names the seed, the recomputed total and the excess."""
    sub = submission({"train_gpt.py": SCRIPT})
    report = _check(sub, [FakeRun("s7.log", "7", model_bytes=CAP_BYTES, code_size_bytes=len(SCRIPT))])
    message = report.errors[0].message
    assert "seed 7" in message and f"{CAP_BYTES + len(SCRIPT):,}" in message and f"by {len(SCRIPT):,}" in message


def test_uncounted_siblings_are_added_and_warned(submission):
    """Sibling code the log does not count is listed with its bytes and pushes the total over the cap."""
    sibling = "x = 1\n" * 2000  # 12,000 bytes
    sub = submission({"train_gpt.py": "import helper\n" + SCRIPT, "helper.py": sibling})
    entry = len("import helper\n" + SCRIPT)
    model = CAP_BYTES - entry - 100  # under the cap as logged, over once helper.py counts
    report = _check(sub, [FakeRun("s1.log", "1", model_bytes=model, code_size_bytes=entry,
                                  total_size_bytes=model + entry)])
    assert _rules(report) == [("ARTIFACT-CAP-16MB", "error", "1"), ("CODE-COUNTING", "warning", None)]
    warning = next(f for f in report.findings if f.rule == "CODE-COUNTING")
    assert "helper.py (12,000 B, not counted by the logs)" in warning.message


def test_duplicate_logs_of_one_run_give_one_row(submission):
    """train.log saved next to train_seed1.log with identical figures is judged once."""
    sub = submission({"train_gpt.py": SCRIPT})
    runs = [FakeRun(name, "1", model_bytes=CAP_BYTES, code_size_bytes=len(SCRIPT)) for name in ("train.log", "s1.log")]
    report = _check(sub, runs)
    assert len(report.facts["size"]["seeds"]) == 1 and len(report.errors) == 1


def test_no_model_size_is_not_checked(submission):
    """Without an artifact or a logged model size the cap is listed as not checked, never as passing."""
    report = _check(submission({"train_gpt.py": SCRIPT}), [FakeRun("s.log", "1")])
    assert [n.rule for n in report.not_checked] == ["ARTIFACT-CAP-16MB"]
    assert "ARTIFACT-CAP-16MB" not in report.checked


@pytest.mark.parametrize("total, expected", [
    (CAP_BYTES + 34_000, [("ARTIFACT-CAP-16MB", "error", "3")]),
    (CAP_BYTES - 34_000, []),
])
def test_a_logged_total_without_a_model_line_is_judged(submission, total, expected):
    """A log that prints only its total (no model-size line, no artifact) is held to the cap by that total."""
    report = _check(submission({"train_gpt.py": SCRIPT}), [FakeRun("s3.log", "3", total_size_bytes=total)])
    assert _rules(report) == expected
    assert "ARTIFACT-CAP-16MB" in report.checked


def test_artifact_file_supplies_the_model_bytes(submission):
    """An artifact in the folder is measured directly and named in the size table."""
    blob = lzma.compress(random.Random(0).randbytes(50_000))
    sub = submission({"train_gpt.py": SCRIPT, "final_model.int6.ptz": blob, "notes.txt": "hello\n"})
    report = _check(sub, [])
    artifact = report.facts["size"]["artifact"]
    assert artifact["path"] == "final_model.int6.ptz" and artifact["bytes"] == len(blob)
    assert report.facts["size"]["seeds"][0]["shipped_total"] == len(blob) + len(SCRIPT)


def test_bomb_artifact_is_refused(submission, zero_bomb):
    """An artifact that is a decompression bomb is flagged quickly instead of being expanded."""
    xz_bomb = lzma.compress(bytes(64 << 20), preset=0)
    sub = submission({"train_gpt.py": SCRIPT, "final_model.ptz": xz_bomb})
    report = _check(sub, [])
    problem = report.facts["size"]["artifact"]["problem"]
    assert problem and problem.startswith("refused")
    assert any(f.source == "artifact" and "refused" in f.message for f in report.findings)


def test_data_shards_are_not_artifacts(submission):
    """A fineweb-format .bin shard is data, not the model blob."""
    shard = (20240520).to_bytes(4, "little") + bytes(4096)
    report = _check(submission({"train_gpt.py": SCRIPT, "fineweb_val_000000.bin": shard}), [])
    assert report.facts["size"]["artifact"] is None

"""Static TRAIN-DATA-AT-EVAL errors re-judged by the logs: the loop's logged end plus the logged reads."""

from __future__ import annotations

import json

import pytest

from harness.check.pipeline import check_path
from tests.conftest import BASELINE_LOG

# Training data read after the loop, with no reserve subtracted in the code (the #593 shape).
SCRIPT = '''\
import glob
import torch


def main(args, model, opt):
    train_loader = DistributedTokenLoader(args.train_files)
    while True:
        model(train_loader.next_batch()).backward()
        opt.step()
    calib_loader = DistributedTokenLoader(args.train_files)
    collect_hessians(model, calib_loader)
'''


# The same reads after a loop whose cap leaves a reserve for them (the #1855 shape).
RESERVED = SCRIPT.replace("    while True:\n", "    max_wallclock_ms = 600000 - args.gptq_reserve_seconds * 1000\n"
                          "    while elapsed() < max_wallclock_ms:\n")


def _folder(make_submission, loop_ms: int, reads_s: float | None, script: str = SCRIPT, track: str = "10min_16mb"):
    log = BASELINE_LOG.replace("600038", str(loop_ms)).format(
        seed=1337, code_bytes=len(script), total=15815847 + len(script), loss=2.07, bpb=1.2243)
    if reads_s is not None:
        stop = log.index("stopping_early")
        stop = log.index("\n", stop) + 1
        log = log[:stop] + f"GPTQ:collected 67 Hessians in {reads_s}s\n" + log[stop:]
    return make_submission({"train_gpt.py": script, "README.md": "x\n", "train_seed1337.log": log,
                            "submission.json": json.dumps({"track": track, "val_bpb": 1.2243})})


class TestLoggedReserve:
    """The logged loop end and read time decide whether post-loop training-data reads fit in 600 s."""

    @pytest.mark.parametrize("loop_ms, severity", [
        (560_005, "warning"),  # VALID: launched with a 560 s cap; every loop ended 40 s before the budget
        (600_038, "error"),  # INVALID: the loop ran to the cap, the reads come after it
    ])
    def test_untimed_reads_need_the_loop_to_end_early(self, make_submission, loop_ms, severity):
        """With every logged loop ending at least 20 s early, untimed post-loop reads are a warning, else an error."""
        found = {f.severity for f in check_path(_folder(make_submission, loop_ms, None)).findings
                 if f.rule == "TRAIN-DATA-AT-EVAL"}
        assert found == {severity}

    @pytest.mark.parametrize("loop_ms, reads_s, script, severity", [
        (590_019, 3.8, SCRIPT, "info"),  # VALID: a 590 s cap (a 10 s reserve); loop plus reads end at 593.8 s
        # VALID: the code reserves time, so the reads are not flagged; TRAIN-TIME-600 judges the 603.1 s (#1855)
        (599_600, 3.5, RESERVED, None),
        (599_600, 3.5, SCRIPT, "error"),  # INVALID near-miss: the same 603.1 s with no reserve in the code (#593)
        (590_020, 22.0, SCRIPT, "error"),  # INVALID: the reads end at 612 s
    ])
    def test_timed_reads_are_judged_by_loop_end_plus_read_time(self, make_submission, loop_ms, reads_s, script,
                                                               severity):
        """Logged loop end + logged read time within 600 s lowers the static error to info; past it, it stays an
        error where the code reserves no time for the reads."""
        report = check_path(_folder(make_submission, loop_ms, reads_s, script))
        found = [f for f in report.findings if f.rule == "TRAIN-DATA-AT-EVAL"]
        assert {f.severity for f in found} == ({severity} if severity else set())
        if severity == "info":
            assert all(any(e.file == "train_seed1337.log" and e.line for e in f.evidence) for f in found)


@pytest.mark.parametrize("track, severity", [
    ("10min_16mb", "error"),  # INVALID: the record track's 600 s budget does not cover reads after the loop
    ("non_record_16mb", "warning"),  # VALID: no training budget off the record track: more training, said so
])
def test_post_loop_training_reads_off_the_record_track_are_a_warning(make_submission, track, severity):
    """Training data read after the loop breaks the record track's budget; off it the finding is a warning."""
    report = check_path(_folder(make_submission, 600_038, None, track=track))
    assert {f.severity for f in report.findings if f.rule == "TRAIN-DATA-AT-EVAL"} == {severity}

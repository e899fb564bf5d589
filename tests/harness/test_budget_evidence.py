"""Static TRAIN-DATA-AT-EVAL errors re-judged by the logged loop times: a reserve left by a lowered cap."""

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


@pytest.mark.parametrize("loop_ms, severity", [
    (560_005, "warning"),  # VALID: launched with a 560 s cap; every loop ended 40 s before the budget
    (600_038, "error"),  # INVALID: the loop ran to the cap, the reads come after it
])
def test_a_reserve_left_by_the_logged_loop_downgrades_the_static_error(make_submission, loop_ms, severity):
    """With every logged loop ending at least 20 s early, post-loop training reads are a warning, else an error."""
    log = BASELINE_LOG.replace("600038", str(loop_ms)).format(
        seed=1337, code_bytes=len(SCRIPT), total=15815847 + len(SCRIPT), loss=2.07, bpb=1.2243)
    folder = make_submission({"train_gpt.py": SCRIPT, "README.md": "x\n", "train_seed1337.log": log,
                              "submission.json": json.dumps({"track": "10min_16mb", "val_bpb": 1.2243})})
    found = {f.severity for f in check_path(folder).findings if f.rule == "TRAIN-DATA-AT-EVAL"}
    assert found == {severity}

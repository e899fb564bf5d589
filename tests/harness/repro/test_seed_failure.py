"""Tests for harness.run.seed.failure_cause: the exception line a dying run is reported by."""

from __future__ import annotations

import pytest

from harness.run.seed import failure_cause

TORCHRUN_TAIL = [
    "E1202 torch/distributed/elastic/multiprocessing/api.py:874] failed (exitcode: 1) local_rank: 0",
    "Traceback (most recent call last):",
    '  File "/usr/bin/torchrun", line 8, in <module>',
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
    "============================================================",
    "train_gpt.py FAILED",
    "  To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
]


@pytest.mark.parametrize("lines, expected", [
    (["step:1/5", "Traceback (most recent call last):", '  File "train_gpt.py", line 6, in <module>',
      "ModuleNotFoundError: No module named 'flash_attn_interface'"] + TORCHRUN_TAIL,
     ("ModuleNotFoundError: No module named 'flash_attn_interface'", 4)),
    (["[rank0]: Traceback (most recent call last):", "[rank0]: torch.OutOfMemoryError: CUDA out of memory."],
     ("torch.OutOfMemoryError: CUDA out of memory.", 2)),
    (["step:1/2", "MemoryError"], ("MemoryError", 2)),
    (["KeyError: 'x'", "ValueError: second"], ("ValueError: second", 2)),
    (["step:1/2 train_loss:3.0", "val_loss: 2.0"], None),
    (TORCHRUN_TAIL, None),
    ([], None),
])
def test_failure_cause_is_the_scripts_last_exception(lines, expected):
    """The cause is the last exception line the script printed, never the launcher's wrapper or a metric line."""
    assert failure_cause(lines) == expected

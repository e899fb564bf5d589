"""Log lines tell static rules whether a flag-guarded path ran."""

from __future__ import annotations

import pytest

from harness.check.static_rules import log_hints_from
from harness.submission.logs import parse_log


@pytest.mark.parametrize(("log", "flag", "expected"), [
    ("ttt:start lr=0.002 epochs=3\nttt_epoch:1/3 loss:1.95\n", "TTT_ENABLED", "1"),
    ("prequant_ttt:done total_time=523s\n", "PREQUANT_TTT_ENABLED", "1"),
    ("step:1/10 train_loss:2.0\n", "TTT_ENABLED", None),
    ("Hyperparameters:\n  ttt_enabled: False\n", "TTT_ENABLED", "False"),
])
def test_flag_value_from_logs(log, flag, expected):
    """A `key:value` line whose key names the flag's feature marks the flag as on; a printed value wins."""
    hints = log_hints_from([parse_log(log, "train.log")])
    assert hints.flag_value(flag) == expected

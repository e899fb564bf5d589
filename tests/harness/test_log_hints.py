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


@pytest.mark.parametrize("line, flag, expected", [
    # VALID: a source line dumped into the log names the feature; it did not run
    ("    prequant_ttt = bool(int(os.environ.get('PREQUANT_TTT', '1')))", "PREQUANT_TTT_ENABLED", None),
    # VALID: a settings echo that says the feature is off
    ("slot_enabled=False ttt_enabled=0 lr=0.1", "SLOT_ENABLED", "False"),
    ("SLOT: disabled", "SLOT_ENABLED", None),
    # INVALID: a progress line of the feature shows it ran; an echo that says it is on
    ("prequant_ttt:done in 388s", "PREQUANT_TTT_ENABLED", "1"),
    ("ttt_enabled=1 ttt_epochs=3", "TTT_ENABLED", "1"),
])
def test_what_a_log_line_says_about_a_flag(line, flag, expected):
    """A flag's logged value comes from settings echoes and progress lines, never from dumped source or an 'off'."""
    from harness.check.static_rules import log_hints_from
    from harness.submission.logs import parse_log

    assert log_hints_from([parse_log(line + "\n", "train.log")]).flag_value(flag) == expected

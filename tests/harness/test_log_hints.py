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


RESCORING_SCRIPT = '''import torch
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def adapt_and_score(model, opt, val_tokens):
    total = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        with torch.no_grad():
            total += model(x, y).item()
        model(x, y).backward()
        opt.step()
    return total
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    first = adapt_and_score(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    print(f"score_first_pass val_loss:{first:.4f} val_bpb:{first:.8f}")
    again = eval_val(model, val_tokens)
    print(f"second_look val_loss:{again:.4f} val_bpb:{again:.8f}")
main()
'''


@pytest.mark.parametrize("claim, severity", [
    ("1.07120000", "warning"),  # VALID in effect: the claim is the score-first pass, the re-score a diagnostic
    ("1.06550000", "error"),  # INVALID: the claim is the re-score after adapting on the same tokens
])
def test_the_claimed_line_decides_which_pass_is_reported(make_submission, claim, severity):
    """`check` tells RESCORE-S1 which printed line the claim was read from, so a diagnostic re-score is a warning."""
    import json

    from harness.check.pipeline import check_path

    log = ("step:100/100 val_loss:2.0 val_bpb:1.2\nscore_first_pass val_loss:1.8087 val_bpb:1.07120000\n"
           "second_look val_loss:1.7990 val_bpb:1.06550000\n")
    folder = make_submission({"train_gpt.py": RESCORING_SCRIPT, "train.log": log, "submission.json": json.dumps(
        {"name": "x", "author": "a", "github_id": "a", "date": "2026-03-20", "val_bpb": float(claim)})})
    found = [f.severity for f in check_path(folder).findings if f.rule == "RESCORE-S1"]
    assert found == [severity]


FLAGGED_TTT_SCRIPT = '''import os
import torch
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if os.environ.get("TTT_ENABLED", "0") == "1":
        for i in range(0, 4096, 1024):
            model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).backward()
            opt.step()
    total = 0.0
    with torch.no_grad():
        for i in range(0, 4096, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    print(total)
main()
'''


@pytest.mark.parametrize("readme, severity", [
    ("Run:\n\n    TTT_ENABLED=1 SEED=42 \\\n      torchrun --standalone --nproc_per_node=8 train_gpt.py\n", "error"),
    ("Run:\n\n    SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py\n", "warning"),
    # near-miss: prose mentioning the flag is not a run command
    ("Set TTT_ENABLED=1 to try test-time training; the submitted run did not.\n\n    torchrun train_gpt.py\n",
     "warning"),
])
def test_the_documented_run_command_sets_flags(make_submission, readme, severity):
    """With no log printing a flag, the README's run command says whether the guarded path ran."""
    from harness.check.pipeline import check_path

    folder = make_submission({"train_gpt.py": FLAGGED_TTT_SCRIPT, "README.md": readme})
    assert [f.severity for f in check_path(folder).findings if f.rule == "TTT-PREEVAL-VAL"] == [severity]


@pytest.mark.parametrize("text, scripts, env", [
    ("TTT_ENABLED=1 SEED=42 torchrun train_gpt.py", None, {"TTT_ENABLED": "1", "SEED": "42"}),
    # one command per seed: the seed differs, the flag they share still counts
    ("SEED=42 TTT_ENABLED=1 torchrun train_gpt.py\nSEED=7 TTT_ENABLED=1 torchrun train_gpt.py", None,
     {"TTT_ENABLED": "1"}),
    # the run and an ablation: the text does not say which one scored
    ("TTT_ENABLED=1 torchrun train_gpt.py\nAblation: TTT_ENABLED=0 torchrun train_gpt.py", None, {}),
    # a command without the flag runs the code default: the flag is undecided
    ("torchrun train_gpt.py\nTTT_ENABLED=1 torchrun train_gpt.py", None, {}),
    # a data download launched before training sets nothing and does not undo the run's settings
    ("python3 data/cached_challenge_fineweb.py --variant sp1024\nTTT_ENABLED=1 torchrun train_gpt.py",
     {"train_gpt.py"}, {"TTT_ENABLED": "1"}),
    # exports apply to what follows them
    ("export NGRAM=1\ntorchrun train_gpt.py\nSEED=7 torchrun train_gpt.py", None, {"NGRAM": "1"}),
])
def test_run_command_env_keeps_only_settings_every_launch_agrees_on(text, scripts, env):
    """A README setting counts only when every launch of the folder's scripts gives it the same value."""
    from harness.check.static_rules import run_command_env

    assert run_command_env(text, scripts) == env


def test_an_ablation_command_does_not_decide_a_flag(make_submission):
    """A README showing the run with and without the flag leaves the flagged path's finding a warning."""
    from harness.check.pipeline import check_path

    readme = "Run:\n\n    TTT_ENABLED=1 torchrun train_gpt.py\n\nAblation:\n\n    TTT_ENABLED=0 torchrun train_gpt.py\n"
    folder = make_submission({"train_gpt.py": FLAGGED_TTT_SCRIPT, "README.md": readme})
    assert [f.severity for f in check_path(folder).findings if f.rule == "TTT-PREEVAL-VAL"] == ["warning"]


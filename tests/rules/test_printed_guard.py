"""A flag-guarded branch whose own message is in the run output ran, whatever the flag's default says."""

from __future__ import annotations

import pytest

from harness.check.static_rules import log_hints_from
from harness.submission.logs import parse_log
from rules.base import LogHints
from rules.engine import check_source

# Adaptation on validation data behind a flag that is off by default; the branch announces itself.
SCRIPT = '''import os, torch
class Hyperparameters:
    val_files = os.path.join("data", "fineweb_val_*.bin")
    adapt = bool(int(os.environ.get("ADAPT_FIRST", "0")))
args = Hyperparameters()
def main():
    tokens = torch.load(args.val_files)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters())
    if args.adapt:
        print(f"adapt: {10} epochs over {tokens.numel()} tokens")
        for epoch in range(10):
            loss = model(tokens[:-1], tokens[1:])
            loss.backward()
            opt.step()
    {ELSEWHERE}
    score = 0.0
    for i in range(0, tokens.numel(), 1024):
        score += model(tokens[i:i + 1024], tokens[i + 1:i + 1025]).item()
    print(score)
main()
'''


def _severity(lines: tuple[str, ...], elsewhere: str = "pass") -> list[str]:
    result = check_source(SCRIPT.replace("{ELSEWHERE}", elsewhere), log_hints=LogHints(lines=lines))
    return [f.severity for f in result.findings if f.rule == "TTT-PREEVAL-VAL"]


@pytest.mark.parametrize("lines, elsewhere, expected", [
    # INVALID: the run printed the branch's own line, so the off-by-default flag was on
    (("adapt: 10 epochs over 62021632 tokens",), "pass", ["error"]),
    (("[rank0] 12:00:01 adapt: 10 epochs over 62021632 tokens", "final val_bpb:1.1"), "pass", ["error"]),
    # near-miss: the output says nothing of the branch
    (("final val_bpb:1.1",), "pass", ["warning"]),
    # near-miss: the same message is also printed outside the branch, so its presence proves nothing
    (("adapt: 10 epochs over 62021632 tokens",), 'print(f"adapt: {10} epochs over {tokens.numel()} tokens")',
     ["warning"]),
    # near-miss: a different message that shares the first words
    (("adapt: skipped",), "pass", ["warning"]),
])
def test_a_branchs_printed_line_decides_its_guard(lines, elsewhere, expected):
    """The guard counts as on only when a line that this branch alone prints appears in the run's output."""
    assert _severity(lines, elsewhere) == expected


def test_the_source_dump_is_not_run_output():
    """A log that dumps the script (the template's own source line) but never ran the branch keeps the warning."""
    dump = SCRIPT.replace("{ELSEWHERE}", "pass")
    log = parse_log(dump + "step:1/10 train_loss:3.0 train_time:1ms\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 "
                    "val_bpb:1.2\n", "train.log")
    hints = log_hints_from([log])
    assert not any("adapt:" in line for line in hints.lines)
    assert _severity(hints.lines) == ["warning"]


# "Off by logs", the converse: adaptation on validation data behind a flag that is ON by default, in a function the
# guarded branch calls; the branch announces itself through the script's rank-0 `say`, and so does the final score.
ON_BY_DEFAULT = '''import os, sys, torch
class Hyperparameters:
    val_files = os.path.join("data", "fineweb_val_*.bin")
    refine = bool(int(os.environ.get("REFINE_ON_HELDOUT", "1")))
    refine_passes = int(os.environ.get("REFINE_PASSES", "4"))
args = Hyperparameters()
def say(text):
    if int(os.environ.get("RANK", "0")) == 0:
        print(text, flush=True)
def refine(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for p in range(args.refine_passes):
        loss = model(tokens[:-1], tokens[1:])
        loss.backward()
        opt.step()
        say(f"refine pass {p} loss {loss.item():.4f}")
def main():
    tokens = torch.load(args.val_files)
    model = torch.nn.Linear(4, 4)
    say(f"loaded {tokens.numel()} held-out tokens")
    if args.refine:
        {PREFIX}{ANNOUNCE}
        refine(model, tokens)
    {ELSEWHERE}
    score = 0.0
    for i in range(0, tokens.numel(), 1024):
        score += model(tokens[i:i + 1024], tokens[i + 1:i + 1025]).item()
    say(f"closing_score val_loss:{score:.6f} val_bpb:{score / 2:.6f}")
main()
'''
ANNOUNCE = 'say(f"refine start: {args.refine_passes} passes over the held-out split")'
START_LINE = ON_BY_DEFAULT.splitlines().index("    if args.refine:") + 2  # the announcing line's number

TRAINING = "step:1/10 train_loss:3.0 train_time:1ms\nstep:10/10 train_loss:2.5 train_time:9ms\n"
FINAL = "closing_score val_loss:2.000000 val_bpb:1.000000\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.0\n"
STARTED = "refine start: 4 passes over the held-out split\n"


def _script(announce: str = ANNOUNCE, prefix: str = "", elsewhere: str = "pass") -> str:
    return ON_BY_DEFAULT.replace("{PREFIX}", prefix).replace("{ANNOUNCE}", announce).replace("{ELSEWHERE}", elsewhere)


def _findings(script: str, logs: list[str], hyper: dict[str, str] | None = None):
    runs = [parse_log(text, f"train_seed{i}.log") for i, text in enumerate(logs)]
    hints = log_hints_from(runs)
    if hyper:
        hints = LogHints(hints.tags, hyper, hints.lines)
    return [f for f in check_source(script, log_hints=hints).findings if f.rule == "TTT-PREEVAL-VAL"]


def _complete(*middle: str) -> str:
    return "loaded 62021632 held-out tokens\n" + TRAINING + "".join(middle) + FINAL


def test_the_branch_line_missing_from_every_complete_log_is_off_by_logs():
    """Three complete runs, none with the line the branch always prints, all with the later score line printed
    through the same `say`: the branch did not run, the error becomes a warning that cites the missing line."""
    (finding,) = _findings(_script(), [_complete(), _complete(), _complete()])
    assert finding.severity == "warning"
    note = next(e.note for e in finding.evidence if "guarded by" in e.note)
    assert "off by logs" in note and f"(line {START_LINE})" in note and "`say`" in note


@pytest.mark.parametrize("logs, why", [
    # the distinctive line is in one of the three logs: on, whatever the others say
    ([_complete(), _complete(STARTED), _complete()], "present in one log"),
    # thin logs: the runs stop in training, before anything the script prints after the branch
    (["loaded 62021632 held-out tokens\n" + TRAINING] * 3, "no complete run"),
    # thin logs: output lines not captured at all (a log of metric lines only)
    (["final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.0\n"], "only the final metric"),
])
def test_not_off_when_the_line_is_there_or_the_logs_are_thin(logs, why):
    """On by default and nothing in the logs shows otherwise: the error stands."""
    assert [f.severity for f in _findings(_script(), logs)] == ["error"], why


def test_the_source_dump_is_not_evidence_of_getting_past_the_branch():
    """A log that dumps the script (its score line's template included) and stops in training stays thin."""
    script = _script()
    log = script + "=" * 100 + "\n" + TRAINING
    assert [f.severity for f in _findings(script, [log])] == ["error"]


@pytest.mark.parametrize("announce, prefix, elsewhere, why", [
    # the announcing print sits inside a further condition in the branch: it may not print when the branch runs
    ('if os.environ.get("VERBOSE"):\n            ' + ANNOUNCE, "", "pass", "conditional print"),
    # the branch may leave before it prints
    (ANNOUNCE, 'if tokens.numel() < 2:\n            return\n        ', "pass", "early exit first"),
    # the same text is printed elsewhere too: not distinctive
    (ANNOUNCE, "", ANNOUNCE, "printed elsewhere too"),
    # the announcement goes to another file: the logs never show what that file gets
    ('print(f"refine start: {args.refine_passes} passes", file=open("side.txt", "a"))', "", "pass", "other file"),
    # printed with plain print on every rank, while the logs only show what `say` (rank 0) prints
    ('print(f"refine start: {args.refine_passes} passes over the held-out split")', "", "pass", "other channel"),
    # a value that may print like Python (`tensor(...)`) ends the line: the harness may not keep it
    ('say(f"refine start: {tokens.sum()}")', "", "pass", "line may not be kept"),
])
def test_not_off_when_the_missing_line_proves_nothing(announce, prefix, elsewhere, why):
    """Absent from every complete log, but its absence does not show that the branch did not run."""
    script = _script(announce, prefix, elsewhere)
    assert [f.severity for f in _findings(script, [_complete(), _complete(), _complete()])] == ["error"], why


def test_off_by_logs_through_a_logger_whose_other_lines_appear():
    """The branch and the final score both go through `log.info`; the score line is in the logs, the branch's not."""
    script = _script('log.info(f"refine start: {args.refine_passes} passes over the held-out split")').replace(
        'say(f"closing_score', 'log.info(f"closing_score').replace(
        "args = Hyperparameters()\n", "args = Hyperparameters()\nimport logging\nlog = logging.getLogger(__name__)\n")
    assert [f.severity for f in _findings(script, [_complete(), _complete()])] == ["warning"]
    # near-miss: the same logger's later lines never reach the log (the score is printed some other way)
    silent = script.replace('log.info(f"closing_score', 'say(f"closing_score')
    assert [f.severity for f in _findings(silent, [_complete(), _complete()])] == ["error"]


def test_a_logged_flag_value_wins_over_a_missing_line():
    """The hyperparameter echo says the flag was on: a missing announcement does not turn it off."""
    findings = _findings(_script(), [_complete()], {"REFINE_ON_HELDOUT": "1"})
    assert [f.severity for f in findings] == ["error"]


TWO_PHASES = '''import os, torch
class Hyperparameters:
    val_files = os.path.join("data", "fineweb_val_*.bin")
    warm_passes = int(os.environ.get("WARM_PASSES", "50"))
    main_passes = int(os.environ.get("MAIN_PASSES", "20"))
args = Hyperparameters()
def say(text):
    print(text, flush=True)
def run_passes(model, opt, passes, tokens):
    for _ in range(passes):
        model(tokens[:-1], tokens[1:]).backward()
        opt.step()
def main():
    tokens = torch.load(args.val_files)
    model = torch.nn.Linear(4, 4)
    if args.warm_passes > 0:
        say(f"warm phase begins: {args.warm_passes} passes")
        run_passes(model, torch.optim.Adam(model.parameters()), args.warm_passes, tokens)
    if args.main_passes > 0:
        say(f"main phase begins: {args.main_passes} passes")
        run_passes(model, torch.optim.SGD(model.parameters(), lr=0.1), args.main_passes, tokens)
    score = 0.0
    for i in range(0, tokens.numel(), 1024):
        score += model(tokens[i:i + 1024], tokens[i + 1:i + 1025]).item()
    say(f"closing_score val_loss:{score:.6f} val_bpb:{score / 2:.6f}")
main()
'''


def test_a_helper_another_guarded_branch_also_calls_is_not_off_by_one_branchs_logs():
    """The training helper runs behind two on-by-default counts; the logs show only the second phase (the first was
    set to 0). The first branch did not run, but the helper did, through the second: the error stands."""
    log = "step:10/10 train_loss:2.5 train_time:9ms\nmain phase begins: 20 passes\n" + FINAL
    assert [f.severity for f in _findings(TWO_PHASES, [log, log])] == ["error"]

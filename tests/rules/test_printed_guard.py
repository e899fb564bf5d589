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

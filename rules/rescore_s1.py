"""RESCORE-S1: a second evaluation pass over validation data after a score-first adaptation pass."""

from __future__ import annotations

from rules.analysis.passes import exclusive_branches, leaves_before, scoring_passes, shares_loop
from rules.base import Invalid, Rule, Valid

_COMMON = '''import torch
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def eval_val_ttt(model, opt, val_tokens):
    total = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        with torch.no_grad():
            total += model(x, y).item()
        model(x, y).backward()
        opt.step()
    return total
'''
_RESCORE = _COMMON + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    ttt = eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    final = eval_val(model, val_tokens)
    print(f"final val_bpb:{final}")
main()
'''
_DIAGNOSTIC = _COMMON + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    print(f"diagnostic quantized val_bpb:{eval_val(model, val_tokens)}")
    print(f"final ttt val_bpb:{eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)}")
main()
'''

_EITHER = _COMMON + '''def main(use_ttt):
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    if use_ttt:
        score = eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    else:
        score = eval_val(model, val_tokens)
    print(f"final val_bpb:{score}")
main(True)
'''
_RESCORE_IN_HELPER = _COMMON + '''def report(model, val_tokens):
    print(f"final val_bpb:{eval_val(model, val_tokens)}")
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    report(model, val_tokens)
main()
'''


_EVAL_ONLY_RETURNS = _COMMON + '''def main(eval_only):
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    if eval_only:
        print(f"final ttt val_bpb:{eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)}")
        return
    for step in range(100):
        if step % 50 == 0:
            print(f"step:{step} val_bpb:{eval_val(model, val_tokens)}")
main(False)
'''

_EVAL_ONLY_FALLS_THROUGH = _COMMON + '''def main(eval_only):
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    if eval_only:
        print(f"ttt val_bpb:{eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)}")
        if not val_tokens.numel():
            return
    print(f"final val_bpb:{eval_val(model, val_tokens)}")
main(True)
'''


class RescoreAfterAdapt(Rule):
    """Flags a validation scoring pass that runs after a pass which scored and adapted on the same validation data
    (score-first TTT, then a re-evaluation with the adapted model).

    Why: #1017 C4 (single left-to-right pass); PR #991 closed and the 2026-03-27 wave by valerio-oai on #677
    (maintainer ruling, bulk closure): only the first-pass score s0 may be reported.

    Instead: report the cumulative loss of the single score-first pass (#1004); diagnostic evaluations of the
    un-adapted model before TTT are fine.
    """

    ID = "RESCORE-S1"
    CODE = "PG203"
    MESSAGE = "Validation data is scored again after a pass that adapted on it (s1 re-score)."
    VALID = [Valid(_DIAGNOSTIC, name="diagnostic eval before TTT, TTT score reported"),
             Valid(_EITHER, name="TTT pass or plain pass, one of the two branches"),
             Valid(_EVAL_ONLY_RETURNS, name="the adapting pass sits in a branch that returns before the later eval")]
    INVALID = [Invalid(_RESCORE, expected_line=21, expected_severity="error", name="second eval after TTT"),
               Invalid(_RESCORE_IN_HELPER, expected_line=23, expected_severity="error",
                       name="second eval after TTT, inside a reporting helper"),
               Invalid(_EVAL_ONLY_FALLS_THROUGH, expected_line=24, expected_severity="error",
                       name="near-miss: the branch returns only conditionally, so the re-score still runs")]

    def finish(self) -> None:
        for func in self.facts.graph.functions:
            passes = scoring_passes(self.facts, func)
            for i, first in enumerate(passes):
                if not first.adapts:
                    continue
                for later in passes[i + 1:]:
                    if later.anchor is first.anchor or shares_loop(self.facts, first.anchor, later.anchor) \
                            or exclusive_branches(self.facts, first.anchor, later.anchor) \
                            or leaves_before(self.facts, first.anchor, later.anchor):
                        continue
                    if later.anchor.lineno <= getattr(first.anchor, "end_lineno", first.anchor.lineno):
                        continue
                    severity, guards = self.gated_severity(later.anchor)
                    evidence = [(first.anchor.lineno, "first pass: scores and adapts on validation data"),
                                (first.adapt_line, "adaptation inside that pass"),
                                (later.anchor.lineno, "second pass over validation data after adaptation"),
                                (later.score_line, "re-score accumulated here")]
                    self.report(later.anchor, f"Validation data is re-scored at line {later.anchor.lineno} after "
                                f"the adapting pass at line {first.anchor.lineno}; only the first pass may be "
                                "reported.", severity=severity, evidence=[e for e in evidence if e[0]] + guards)
                    break

"""RESCORE-S1: a second evaluation pass over validation data after a score-first adaptation pass.

A pair (adapting pass, later pass) in one function is an error unless one of these shows the later score is not a
re-score of the adapted model that the submission reports:

* the adaptation does not survive to the later pass (rules.analysis.survival): a fresh local discarded when its
  function returns, a model restored from a copy taken before the update, or a later pass handed another model;
* the logs say the claim is another pass's line (`claimed` of the log hints): when every print whose line matches
  belongs to a pass other than the later one (rules.analysis.passes.printed_by), the finding is a warning.
"""

from __future__ import annotations

from rules.analysis.passes import (
    Pass,
    claimed_elsewhere,
    exclusive_branches,
    leaves_before,
    scoring_passes,
    shares_loop,
)
from rules.analysis.survival import pass_undone
from rules.base import Invalid, LogHints, Rule, Valid

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
# A fine-tune on validation data that logs its running training loss, then one score: adapt-then-score
# (TTT-PREEVAL-VAL's shape), with no first-pass score to re-score.
_FINETUNE_THEN_SCORE = _COMMON + '''def fine_tune(model, opt, val_tokens):
    running = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        loss = model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025])
        running += loss.item()
        loss.backward()
        opt.step()
    print(f"fine-tune loss {running:.4f}")
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    fine_tune(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    print(f"final val_bpb:{eval_val(model, val_tokens)}")
main()
'''
# A score-first pass that scores and trains on one forward (it returns the sum), then a re-score.
_ONE_FORWARD_RESCORE = _FINETUNE_THEN_SCORE.replace(
    '    print(f"fine-tune loss {running:.4f}")\n', "    return running\n").replace(
    "    fine_tune(model,", "    first = fine_tune(model,")
_RESCORE = _COMMON + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    ttt = eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    final = eval_val(model, val_tokens)
    print(f"final val_bpb:{final}")
main()
'''
# The adapting pass runs only with a flag on; the re-score after it re-scores adapted weights only then.
_FLAGGED_FIRST = _COMMON.replace("import torch\n", "import os\nimport torch\n") + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    if os.environ.get("PREQUANT_TTT", "{default}") == "1":
        eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    final = eval_val(model, val_tokens)
    print(f"final val_bpb:{final}")
main()
'''
# The same guard, the variable read through a helper that reads whatever variable it is handed (a dataclass field).
_FLAGGED_BY_HELPER = _COMMON.replace("import torch\n", "import os\nimport torch\n") + '''def from_env(key, fallback):
    raw = os.environ.get(key)
    return fallback if raw is None else raw.strip().lower() in ("1", "true")
class Config:
    adapt_first: bool = from_env("PREQUANT_TTT", {default})
def main():
    cfg = Config()
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    if cfg.adapt_first:
        eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    final = eval_val(model, val_tokens)
    print(f"final val_bpb:{final}")
main()
'''
# The adaptation sits inside the scoring function, behind a flag read there: the call site is unguarded.
_ADAPT_FLAG_INSIDE = _COMMON.replace("import torch\n", "import os\nimport torch\n") + '''def eval_maybe_adapt(model, opt, val_tokens):
    total = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        with torch.no_grad():
            total += model(x, y).item()
        if int(os.environ.get("ADAPT_WHILE_SCORING", "{default}")):
            model(x, y).backward()
            opt.step()
    return total
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    print(f"pre val_bpb:{eval_maybe_adapt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)}")
    print(f"final val_bpb:{eval_val(model, val_tokens)}")
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

# Two alternative evaluations, each returned from its own branch: whichever runs is the only pass.
_ALTERNATIVE_RETURNS = _COMMON + '''def evaluate(model, val_tokens, use_adapter):
    if not use_adapter: return eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    return eval_val(model, val_tokens) + 0 * len(snapshot)
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    print(f"final val_bpb:{evaluate(torch.nn.Linear(4, 4), val_tokens, False)}")
main()
'''
# The same shape, but the first branch assigns its score instead of returning it: the later pass re-scores.
_ALTERNATIVE_FALLS_THROUGH = _ALTERNATIVE_RETURNS.replace(
    "if not use_adapter: return eval_val_ttt(", "if not use_adapter: first = eval_val_ttt(")

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


def _fill(template: str, **parts: str) -> str:
    for key, text in parts.items():
        template = template.replace("{" + key + "}", text)
    return template


# The claim decides between a diagnostic re-score and a reported one: the run printed both lines; the claimed
# val_bpb was read from one of them (log hints `claimed`).
_CLAIM = _COMMON + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    adapted = eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)
    print(f"score-first adaptation val_bpb:{adapted}")
    again = eval_val(model, val_tokens)
    print(f"check after adaptation val_bpb:{again}")
main()
'''
_RAN = ("score-first adaptation val_bpb:1.0712", "check after adaptation val_bpb:1.0655")
_CLAIM_FIRST = LogHints(lines=_RAN, claimed=_RAN[:1])
_CLAIM_SECOND = LogHints(lines=_RAN, claimed=_RAN[1:])

# One reporting helper for both passes: the constant label each call passes tells their lines apart.
_CLAIM_HELPER = _COMMON + '''def report(label, value):
    print(f"{label} val_bpb:{value} (reported)")
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    report("score-first adaptation", eval_val_ttt(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens))
    report("check after adaptation", eval_val(model, val_tokens))
main()
'''
_HELPER_FIRST = LogHints(claimed=("score-first adaptation val_bpb:1.0712 (reported)",))

# The adapting pass puts the model back as it found it (a copy taken before its first update).
_RESTORE = '''import torch
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def eval_val_ttt_restoring(model, opt, val_tokens):
    {BEFORE}
    total = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        with torch.no_grad():
            total += model(x, y).item()
        model(x, y).backward()
        opt.step()
    {AFTER}
    {RESTORE}
    return total
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    print(f"ttt val_bpb:{eval_val_ttt_restoring(model, torch.optim.SGD(model.parameters(), lr=0.01), val_tokens)}")
    print(f"sliding val_bpb:{eval_val(model, val_tokens)}")
main()
'''
_SNAPSHOT = "kept = {k: v.detach().clone() for k, v in model.state_dict().items()}"
_RESTORED = _fill(_RESTORE, BEFORE=_SNAPSHOT, AFTER="pass", RESTORE="model.load_state_dict(kept)")
_SNAPSHOT_LATE = _fill(_RESTORE, BEFORE="pass", AFTER=_SNAPSHOT, RESTORE="model.load_state_dict(kept)")
_NO_COPY = _fill(_RESTORE, BEFORE="kept = model.state_dict()", AFTER="pass", RESTORE="model.load_state_dict(kept)")
_SNAPSHOT_PARAMS = "kept = {n: p.detach().clone() for n, p in model.named_parameters()}"
_RESTORED_BY_LOOP = _fill(_RESTORE, BEFORE=_SNAPSHOT_PARAMS, AFTER="pass", RESTORE='''with torch.no_grad():
        for n, p in model.named_parameters():
            if n in kept:
                p.copy_(kept[n])''')
_RESTORED_IN_PART = _fill(_RESTORE, BEFORE=_SNAPSHOT_PARAMS, AFTER="pass", RESTORE='''with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(kept[n])''')

# Adaptation of a small module of its own, the base model left as it is.
_ADAPTER = '''import torch
class Adapter(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.zeros(width))
    def forward(self, h):
        return h + self.shift
def make_adapter(width):
    adapter = Adapter(width)
    return adapter, torch.optim.SGD(adapter.parameters(), lr=0.01)
def with_optimizer(m):
    return m, torch.optim.SGD(m.parameters(), lr=0.01)
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def eval_val_adapted(model, val_tokens):
    total = 0.0
    {BUILD_ONCE}
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        {BUILD_EACH}
        with torch.no_grad():
            total += model(x, y, extra=adapter).item()
        model(x, y, extra=adapter).backward()
        opt.step()
    {AFTER}
    return total
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    print(f"adapted val_bpb:{eval_val_adapted(model, val_tokens)}")
    print(f"sliding val_bpb:{eval_val(model, val_tokens)}")
main()
'''
_BUILD = "adapter = Adapter(4); opt = torch.optim.SGD(adapter.parameters(), lr=0.01)"
_ADAPTER_PER_BATCH = _fill(_ADAPTER, BUILD_ONCE="pass", BUILD_EACH=_BUILD, AFTER="pass")
_ADAPTER_MERGED = _fill(_ADAPTER, BUILD_ONCE=_BUILD, BUILD_EACH="pass", AFTER='''with torch.no_grad():
        for p, d in zip(model.parameters(), adapter.parameters()):
            p.add_(d)''')
_ADAPTER_KEPT = _fill(_ADAPTER, BUILD_ONCE=_BUILD, BUILD_EACH="pass", AFTER="model.extra = adapter")
_FACTORY_EACH = _fill(_ADAPTER, BUILD_ONCE="pass", BUILD_EACH="adapter, opt = make_adapter(4)", AFTER="pass")
_FACTORY_GIVES_MODEL = _fill(_ADAPTER, BUILD_ONCE="adapter, opt = with_optimizer(model)", BUILD_EACH="pass", AFTER="pass")

# A compile warm-up on training batches, undone before training starts (weights and optimizer state put back).
_WARMUP_RESTORED = _COMMON + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    train_tokens = torch.load("fineweb_train_000000.bin")
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    weights, moments = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for step in range(5):
        model(train_tokens[:1024], train_tokens[1:1025]).backward()
        opt.step()
    model.load_state_dict(weights)
    opt.load_state_dict(moments)
    for step in range(100):
        model(train_tokens[step:step + 1024], train_tokens[step + 1:step + 1025]).backward()
        opt.step()
    print(f"ttt val_bpb:{eval_val_ttt(model, opt, val_tokens)}")
main()
'''.replace("import torch", "import copy, torch")


# A warm-up run of the adapting pass itself, undone before the scored run: that one starts from the same weights.
_WARMUP_PASS = _COMMON.replace("import torch", "import copy, torch") + '''def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    initial = copy.deepcopy(model.state_dict())
    eval_val_ttt(model, opt, val_tokens[:4096])
    {BEFORE}
    print(f"ttt val_bpb:{eval_val_ttt(model, opt, val_tokens)}")
    {AFTER}
main()
'''
_WARMUP_UNDONE = _fill(_WARMUP_PASS, BEFORE="model.load_state_dict(initial)", AFTER="pass")
_WARMUP_UNDONE_LATE = _fill(_WARMUP_PASS, BEFORE="pass", AFTER="model.load_state_dict(initial)")


# TTT on a model of its own, its optimizer built by a helper; the later pass scores the base unless it is handed it.
_OTHER_MODEL = _COMMON.replace("import torch", "import copy, torch") + '''def build_opt(m):
    return torch.optim.SGD(m.parameters(), lr=0.01)
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    base = torch.nn.Linear(4, 4)
    torch.save(base.state_dict(), "final_model.pt")
    ttt_model = torch.nn.Linear(4, 4)
    ttt_model.load_state_dict(torch.load("final_model.pt"))
    opt = build_opt(ttt_model)
    print(f"ttt val_bpb:{eval_val_ttt(ttt_model, opt, val_tokens)}")
    {BETWEEN}
    print(f"sliding val_bpb:{eval_val({LATER}, val_tokens)}")
main()
'''
_OTHER_SCORED = _fill(_OTHER_MODEL, BETWEEN="pass", LATER="base")
_OTHER_COMPILED = _fill(_OTHER_MODEL, BETWEEN="scored = torch.compile(ttt_model)", LATER="scored")
_OTHER_LOADED = _fill(_OTHER_MODEL, BETWEEN="base.load_state_dict(copy.deepcopy(ttt_model.state_dict()))",
                      LATER="base")
_OTHER_VIA_FILE = _fill(_OTHER_MODEL, LATER="base", BETWEEN='''torch.save(ttt_model.state_dict(), "ttt.pt")
    base.load_state_dict(torch.load("ttt.pt"))''')
_OTHER_COPIED = _fill(_OTHER_MODEL, LATER="base", BETWEEN='''with torch.no_grad():
        for p, q in zip(base.parameters(), ttt_model.parameters()):
            p.copy_(q)''')
_OTHER_CLOSURE = _fill(_OTHER_MODEL, BETWEEN="score = lambda: eval_val(ttt_model, val_tokens)", LATER="score()")


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
             Valid(_EVAL_ONLY_RETURNS, name="the adapting pass sits in a branch that returns before the later eval"),
             Valid(_ALTERNATIVE_RETURNS, name="alternative passes, the adapting one returned from a one-line branch"),
             Valid(_RESTORED, name="the adapting pass restores the weights from a copy taken before its first step"),
             Valid(_RESTORED_BY_LOOP, name="restored parameter by parameter from a copy taken before adapting"),
             Valid(_ADAPTER_PER_BATCH, name="a fresh adapter per batch, discarded when the pass returns"),
             Valid(_FACTORY_EACH, name="a fresh adapter and its optimizer per batch, both from one helper"),
             Valid(_WARMUP_RESTORED, name="a warm-up on training batches, weights and optimizer state put back"),
             Valid(_WARMUP_UNDONE, name="a warm-up run of the adapting pass, undone before the scored run"),
             Valid(_FINETUNE_THEN_SCORE, name="a fine-tune logging its running training loss, then one score"),
             Valid(_OTHER_SCORED, name="TTT on a model of its own (built by a helper), the later pass on the base")]
    INVALID = [Invalid(_RESCORE, expected_line=21, expected_severity="error", name="second eval after TTT"),
               Invalid(_ONE_FORWARD_RESCORE, expected_line=29, expected_severity="error",
                       name="near-miss: a score-first pass scoring and training on one forward, then a re-score"),
               Invalid(_FLAGGED_FIRST.replace("{default}", "1"), expected_line=23, expected_severity="error",
                       name="the adapting pass behind a flag on by default, then a re-score"),
               Invalid(_ADAPT_FLAG_INSIDE.replace("{default}", "0"), expected_line=32, expected_severity="warning",
                       name="near-miss: the adaptation inside the first pass is behind a flag that is off"),
               Invalid(_ADAPT_FLAG_INSIDE.replace("{default}", "1"), expected_line=32, expected_severity="error",
                       name="the adaptation inside the first pass, its flag on by default"),
               Invalid(_FLAGGED_FIRST.replace("{default}", "0").replace(
                   'if os.environ.get("PREQUANT_TTT", "0")', 'env = os.environ.get\n    if env("PREQUANT_TTT", "0")'),
                       expected_line=24, expected_severity="warning",
                       name="near-miss: the flag read through a name bound to os.environ.get, off by default"),
               Invalid(_FLAGGED_BY_HELPER.replace("{default}", "False"), expected_line=29, expected_severity="warning",
                       name="near-miss: the flag read through an environment helper, off by default"),
               Invalid(_FLAGGED_BY_HELPER.replace("{default}", "True"), expected_line=29, expected_severity="error",
                       name="the flag read through an environment helper, on by default"),
               Invalid(_FLAGGED_BY_HELPER.replace("{default}", "False"), expected_line=29, expected_severity="error",
                       name="the helper's flag off by default, the documented run command turning it on",
                       log_hints=LogHints(hyperparameters={"PREQUANT_TTT": "1"})),
               Invalid(_FLAGGED_FIRST.replace("{default}", "0"), expected_line=23, expected_severity="warning",
                       name="near-miss: the adapting pass behind a flag off by default (reported as a warning)"),
               Invalid(_RESCORE_IN_HELPER, expected_line=23, expected_severity="error",
                       name="second eval after TTT, inside a reporting helper"),
               Invalid(_ALTERNATIVE_FALLS_THROUGH, expected_line=20, expected_severity="error",
                       name="near-miss: the adapting branch assigns its score and falls through to the later pass"),
               Invalid(_EVAL_ONLY_FALLS_THROUGH, expected_line=24, expected_severity="error",
                       name="near-miss: the branch returns only conditionally, so the re-score still runs"),
               Invalid(_CLAIM, expected_line=22, expected_severity="error", log_hints=_CLAIM_SECOND,
                       name="the claimed line is the one the re-score prints"),
               Invalid(_CLAIM, expected_line=22, expected_severity="warning", log_hints=_CLAIM_FIRST,
                       name="near-miss: the claim is the first pass's line, the re-score a diagnostic (a warning)"),
               Invalid(_CLAIM_HELPER, expected_line=23, expected_severity="warning", log_hints=_HELPER_FIRST,
                       name="near-miss: one reporting helper, the claimed label is the first pass's (a warning)"),
               Invalid(_SNAPSHOT_LATE, expected_line=24, expected_severity="error",
                       name="near-miss: the copy is taken after adapting, so the restore undoes nothing"),
               Invalid(_NO_COPY, expected_line=24, expected_severity="error",
                       name="near-miss: the kept state_dict holds the live tensors, not a copy"),
               Invalid(_RESTORED_IN_PART, expected_line=27, expected_severity="error",
                       name="near-miss: only some parameters are put back"),
               Invalid(_ADAPTER_MERGED, expected_line=37, expected_severity="error",
                       name="near-miss: the adapter is merged into the model's weights after the pass"),
               Invalid(_ADAPTER_KEPT, expected_line=35, expected_severity="error",
                       name="near-miss: the adapter is kept on the model after the pass"),
               Invalid(_FACTORY_GIVES_MODEL, expected_line=35, expected_severity="error",
                       name="near-miss: the adapter helper hands back the model it was given, which is trained"),
               Invalid(_WARMUP_UNDONE_LATE, expected_line=24, expected_severity="error",
                       name="near-miss: the warm-up is undone only after the scored run"),
               Invalid(_OTHER_COMPILED, expected_line=28, expected_severity="error",
                       name="near-miss: the later pass scores a compiled wrapper of the adapted model"),
               Invalid(_OTHER_LOADED, expected_line=28, expected_severity="error",
                       name="near-miss: the adapted weights loaded into the base before the later pass"),
               Invalid(_OTHER_VIA_FILE, expected_line=29, expected_severity="error",
                       name="evasion: the adapted weights carried across through a file"),
               Invalid(_OTHER_COPIED, expected_line=30, expected_severity="error",
                       name="evasion: the adapted weights copied into the base parameter by parameter"),
               Invalid(_OTHER_CLOSURE, expected_line=27, expected_severity="error",
                       name="evasion: the later pass in a closure that reads the adapted model")]

    def finish(self) -> None:
        sites = {site.backward.node: site for site in self.facts.causality.sites}
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
                    if pass_undone(self.facts, func, first, later, sites):
                        continue  # the later pass scores a model the adaptation no longer holds
                    self._report(func, passes, first, later)
                    break

    def _adaptation_off(self, first: Pass) -> list | None:
        """Evidence that every update of FIRST is guarded, inside the functions it calls, by a flag that is off (by
        default and in the logs): the pass scores without adapting. None when some update may run."""
        evidence = []
        for event in first.adapt_events:
            severity, guards = self.gated_severity([*event.chain[1:], event.node], "error")
            if severity == "error":
                return None
            evidence += guards
        return evidence or None

    def _report(self, func, passes: list[Pass], first: Pass, later: Pass) -> None:
        severity, guards = self.gated_severity([later.anchor, first.anchor])  # either pass switched off: no re-score
        switched_off = self._adaptation_off(first)  # the pass runs, but its updates sit behind flags that are off
        if switched_off is not None:
            severity, guards = "warning", guards + switched_off
        evidence = [(first.anchor.lineno, "first pass: scores and adapts on validation data"),
                    (first.adapt_line, "adaptation inside that pass"),
                    (later.anchor.lineno, "second pass over validation data after adaptation"),
                    (later.score_line, "re-score accumulated here")]
        message = (f"Validation data is re-scored at line {later.anchor.lineno} after the adapting pass at line "
                   f"{first.anchor.lineno}; only the first pass may be reported.")
        claimed = claimed_elsewhere(self.facts, func, passes, later, self.log_hints.claimed)
        if claimed is not None:
            stmt, owner, line = claimed
            severity = "warning"
            message = (f"Validation data is re-scored at line {later.anchor.lineno} after the adapting pass at line "
                       f"{first.anchor.lineno}, but the claimed score is printed at line {stmt.lineno} by the pass "
                       f"at line {owner.anchor.lineno}: a diagnostic re-score, which must not be reported.")
            evidence.append((stmt.lineno, f"prints the claimed score (run output: {line[:80]!r})"))
        self.report(later.anchor, message, severity=severity, evidence=[e for e in evidence if e[0]] + guards)

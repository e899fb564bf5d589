"""VAL-SELECTION: choosing between model states by comparing their validation scores."""

from __future__ import annotations

import ast

from rules.base import Invalid, Rule, Valid

_SELECT = '''import copy, torch
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def main(model, swa_state, ema_state):
    val_tokens = torch.load("fineweb_val_000000.bin")
    model.load_state_dict(swa_state)
    swa_bpb = eval_val(model, val_tokens)
    model.load_state_dict(ema_state)
    ema_bpb = eval_val(model, val_tokens)
    if swa_bpb < ema_bpb:
        model.load_state_dict(swa_state)
    torch.save(model.state_dict(), "final_model.pt")
main(torch.nn.Linear(4, 4), {}, {})
'''
_LOG_BOTH = _SELECT.replace('''    if swa_bpb < ema_bpb:
        model.load_state_dict(swa_state)
''', '''    print(f"swa:{swa_bpb} ema:{ema_bpb}")
''')

_TRAIN_LOSS = _SELECT.replace("swa_bpb = eval_val(model, val_tokens)", 'swa_bpb = eval_val(model, train_tail)') \
    .replace("ema_bpb = eval_val(model, val_tokens)", 'ema_bpb = eval_val(model, train_tail)') \
    .replace('    val_tokens = torch.load("fineweb_val_000000.bin")\n',
             '    train_tail = torch.load("fineweb_train_000079.bin")[-65536:]\n')
_DICT = '''import torch
def eval_val(model, val_tokens):
    with torch.no_grad():
        return sum(model(val_tokens[i:i + 1024]).item() for i in range(0, val_tokens.numel(), 1024))
def main(model, states):
    val_tokens = torch.load("fineweb_val_000000.bin")
    scores = {}
    for name, state in states.items():
        model.load_state_dict(state)
        scores[name] = eval_val(model, val_tokens)
    if scores["swa"] < scores["ema"]:
        model.load_state_dict(states["swa"])
main(torch.nn.Linear(4, 4), {})
'''


# A reduction helper that copies a moved tensor back: an identity test, not a comparison of two scores.
_IDENTITY = '''import torch
def reduce_(t):
    moved = t.to("cpu")
    if moved is not t:
        t.copy_(moved)
    return t
val_tokens = torch.load("fineweb_val_000000.bin")
loss_sum = reduce_(torch.zeros(1) + val_tokens.float().sum())
print(f"final val_loss:{loss_sum.item()}")
'''


class ValSelection(Rule):
    """Flags an `if` that compares two validation scores and then loads or copies a model state: best-of-k
    selection on the test set.

    Why: #1017 C4 in spirit; AGORA's checklist bans oracle/hindsight selection between scoring passes (community
    only, so a warning); seen in PR #991 (SWA vs EMA chosen by val_bpb).

    Instead: fix the choice in code, or select on a held-out slice of the training data.
    """

    ID = "VAL-SELECTION"
    CODE = "PG206"
    MESSAGE = "Model state chosen by comparing validation scores (best-of-k on the test set)."
    VALID = [Valid(_LOG_BOTH, name="both scores logged, nothing selected"),
             Valid(_TRAIN_LOSS, name="SWA vs EMA chosen on a held-out slice of training data"),
             Valid(_IDENTITY, name="identity test on a reduced validation sum, then copied back")]
    INVALID = [Invalid(_SELECT, expected_line=14, expected_severity="warning", name="SWA vs EMA by val_bpb"),
               Invalid(_DICT, expected_line=11, expected_severity="warning", name="scores kept in a dict")]

    def finish(self) -> None:
        for func in self.facts.graph.functions:
            for node in func.nodes:
                if isinstance(node, ast.If):
                    self._check_if(node)

    def _check_if(self, node: ast.If) -> None:
        test = node.test
        if not isinstance(test, ast.Compare) or len(test.comparators) != 1 or not isinstance(test.ops[0], _ORDERING):
            return  # only an ordering picks the better score; `is`, `==`, `in` compare identity or equality
        func = self.facts.function_of(node)
        sides = [test.left, test.comparators[0]]
        if not all(isinstance(s, (ast.Name, ast.Attribute, ast.Subscript)) for s in sides):
            return
        if not all(self.facts.is_val(s, func) for s in sides) or self.facts.enclosing_loops(node):
            return
        if not any(_selects_state(n) for stmt in node.body for n in ast.walk(stmt)):
            return
        severity, guards = self.gated_severity(node)
        self.report(node, f"Line {node.lineno} keeps one model state over another by comparing validation "
                    "scores.", severity=severity,
                    evidence=[self.facts.val_evidence(sides[0], func), (node.lineno, "scores compared"),
                              (node.body[0].lineno, "state selected")] + guards)


_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _selects_state(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return name in {"load_state_dict", "deepcopy", "state_dict", "copy_"}
    return False

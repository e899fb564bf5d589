"""TEMP-CALIB-ON-VAL: a temperature set between validation passes, or applied to scored losses after TTT."""

from __future__ import annotations

import ast
import re

from rules.analysis.passes import scoring_passes
from rules.base import Invalid, Rule, Valid

TEMP_NAME = re.compile(r"(?:^|_)temp(?:erature)?(?:_|$)|temp_rescale|inference_temp", re.IGNORECASE)

_BASE = '''import torch
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("inference_temp", torch.ones(()))
def eval_val(model, val_tokens):
    total = 0.0
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - 1024, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    return total
def main():
    model = Model()
    val_tokens = torch.load("fineweb_val_000000.bin")
    first = eval_val(model, val_tokens)
'''
_FILL = _BASE + '''    model.inference_temp.fill_(0.98)
    print(eval_val(model, val_tokens))
main()
'''
_CONSTANT = _BASE.replace('torch.ones(())', 'torch.full((), 0.98)') + '''    print(first)
main()
'''
_SCALED = '''import torch
class Args:
    ttt_temp_rescale = 0.98
args = Args()
def eval_val(model, val_tokens):
    total = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        chunk_loss = model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025])
        chunk_loss = chunk_loss * args.ttt_temp_rescale
        total += chunk_loss.sum()
    return total
print(eval_val(torch.nn.Linear(4, 4), torch.load("fineweb_val_000000.bin")))
'''

_FILL_BEFORE = _BASE.replace("    first = eval_val(model, val_tokens)\n", "") + '''    model.inference_temp.fill_(0.98)
    print(eval_val(model, val_tokens))
main()
'''


class TempCalibOnVal(Rule):
    """Flags a temperature (or calibration scale) set between two validation passes, and per-token validation
    losses multiplied by a temperature-like factor before they are summed into the score.

    Why: the PR #991 closure (its author's #1004 states that T=0.98 applied to re-scored tokens was illegal); #779
    and #596 set a "post-TTT temperature" (maintainer ruling, indirect). Scaling the NLL is also not a normalized
    distribution (#1017 C2).

    Instead: a constant fixed in the code and applied to the logits before the single scored pass, chosen offline
    or on training tokens.
    """

    ID = "TEMP-CALIB-ON-VAL"
    CODE = "PG204"
    MESSAGE = "A temperature is set between validation passes or applied to the scored losses."
    VALID = [Valid(_CONSTANT, name="constant temperature fixed in code"),
             Valid(_FILL_BEFORE, name="fixed temperature set once before the only validation pass")]
    INVALID = [Invalid(_FILL, expected_line=16, expected_severity="error", name="fill between evals"),
               Invalid(_SCALED, expected_line=9, expected_severity="error", name="scaled per-token loss")]

    def finish(self) -> None:
        for func in self.facts.graph.functions:
            self._between_passes(func)
            self._scaled_losses(func)

    def _between_passes(self, func) -> None:
        passes = scoring_passes(self.facts, func)
        if len(passes) < 2:
            return
        for node in func.nodes:
            if not _sets_temperature(node):
                continue
            before = [p for p in passes if getattr(p.anchor, "end_lineno", 0) < node.lineno]
            after = [p for p in passes if p.anchor.lineno > node.lineno]
            if before and after:
                severity, guards = self.gated_severity(node)
                self.report(node, f"Temperature set at line {node.lineno} after validation was scored (line "
                            f"{before[-1].anchor.lineno}) and before it is scored again (line "
                            f"{after[0].anchor.lineno}).", severity=severity, evidence=[
                                (before[-1].anchor.lineno, "earlier validation pass"),
                                (node.lineno, "temperature changed"),
                                (after[0].anchor.lineno, "validation scored again with it")] + guards)

    def _scaled_losses(self, func) -> None:
        scaled: dict[str, ast.AST] = {}
        for node in func.nodes:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) \
                    and isinstance(node.value.op, (ast.Mult, ast.Div)) \
                    and any(_temp_like(side) for side in (node.value.left, node.value.right)) \
                    and self.facts.is_val(node.value, func):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        scaled[target.id] = node
        if not scaled:
            return
        for event in self.facts.events(func):
            if event.kind != "accum" or event.chain or event.count_only:
                continue
            used = {n.id for n in ast.walk(event.node) if isinstance(n, ast.Name)} & set(scaled)
            for name in sorted(used):
                node = scaled[name]
                severity, guards = self.gated_severity(node)
                self.report(node, "Per-token validation losses are rescaled by a temperature-like factor before "
                            "being summed into the score.", severity=severity, evidence=[
                                self.facts.val_evidence(node.value, func), (node.lineno, "loss scaled"),
                                (event.line, "scaled loss accumulated into the score")] + guards)


def _temp_like(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    return bool(name and TEMP_NAME.search(name))


def _sets_temperature(node: ast.AST) -> bool:
    if isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Attribute) and _temp_like(t) for t in targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"fill_", "copy_"}:
        return _temp_like(node.func.value)
    return False

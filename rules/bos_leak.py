"""BOS-LEAK: shift-by-one token mixing (smear gates, token shifts) with no document-boundary mask."""

from __future__ import annotations

import ast

from rules.base import Invalid, Rule, Valid
from rules.facts_dataflow import guarded_severity, script_facts


class BosLeak(Rule):
    """Flags ``x[:, 1:] + g * x[:, :-1]``-style mixing of the previous position with no BOS mask.

    Why: in packed evaluation batches the previous position of a document's first token is the last token of the
    previous document, so the mix carries document N into document N+1. cocohearts' audit of PR #1797 (2026-04-26)
    refused it; #1851 and #1855 were merged with the fix (maintainer audit). A static match is a warning; the
    two-document probe makes it an error.

    Instead: multiply the previous-token term by a mask such as ``not_bos = (input_ids[:, 1:] != BOS_ID)``, in
    every forward that mixes positions (the normal and the TTT forward).
    """

    ID = "BOS-LEAK"
    CODE = "PG112"
    MESSAGE = "previous-token mixing without a document-boundary (BOS) mask leaks across packed documents"
    VALID = [
        Valid(
            "def forward(self, x, input_ids, g):\n"
            "    not_bos = (input_ids[:, 1:] != BOS_ID).unsqueeze(-1)\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1] * not_bos], dim=1)\n",
            name="BOS-masked smear (merged #1855)",
        ),
        Valid(
            "def forward(self, x, input_ids, g):\n"
            "    bos_mask = (input_ids[:, 1:] != 1).unsqueeze(-1)\n"
            "    g = g * bos_mask\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)\n",
            name="mask folded into the gate",
        ),
        Valid(
            "def loss(logits, tokens):\n"
            "    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())\n",
            name="next-token loss alignment is not mixing",
        ),
    ]
    INVALID = [
        Invalid(
            "def forward(self, x, g):\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)\n",
            expected_line=2,
            name="unmasked smear gate (#1797 before the fix)",
        ),
        Invalid(
            "def forward(self, x, g):\n"
            "    x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)\n"
            "    return (1 - g) * x + g * x_prev\n",
            expected_line=3,
            name="early SmearGate form (shifted copy)",
        ),
        Invalid(
            "def forward(self, x, mix):\n"
            "    prev = x[:, :-1]\n"
            "    cur = x[:, 1:]\n"
            "    return cur + mix * (prev - cur)\n",
            expected_line=4,
            name="token shift through names",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions:
            flow = None
            for node in info.nodes:
                if not (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub))):
                    continue
                if isinstance(facts.parents.get(node), ast.BinOp) and isinstance(facts.parents[node].op, (ast.Add, ast.Sub)):
                    continue  # judge the outermost sum once
                flow = flow or facts.flow(info.node)
                shifted = _shift_pair(node, flow)
                if shifted is None:
                    continue
                if _masked(node, flow):
                    continue
                severity, guards = guarded_severity(self, node)
                self.report(node, severity=severity, evidence=[
                    (shifted.lineno, f"previous position `{ast.unparse(shifted)}` mixed into the current one"),
                    (node.lineno, "no mask derived from a BOS / document-boundary comparison"),
                    *guards,
                ])


def _time_slice(sub: ast.AST) -> str | None:
    """"prev" for ``x[:, :-1]``, "cur" for ``x[:, 1:]`` (second axis), else None."""
    if not (isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Tuple) and len(sub.slice.elts) >= 2):
        return None
    first, second = sub.slice.elts[0], sub.slice.elts[1]
    if not (isinstance(first, ast.Slice) and first.lower is None and first.upper is None):
        return None
    if not isinstance(second, ast.Slice) or second.step is not None:
        return None
    if second.lower is None and _is_const(second.upper, -1):
        return "prev"
    if _is_const(second.lower, 1) and second.upper is None:
        return "cur"
    return None


def _is_const(node: ast.AST | None, value: int) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return node.operand.value == -value
    return isinstance(node, ast.Constant) and node.value == value


def _slices(expr: ast.AST, flow) -> list[tuple[str, str, ast.Subscript]]:
    """Time slices in EXPR, and in names defined directly as a shifted copy (``prev = x[:, :-1]`` or
    ``x_prev = torch.cat([zeros, x[:, :-1]], 1)``, which lines up the previous token with the current one)."""
    out = []
    for sub in ast.walk(expr):
        kind = _time_slice(sub)
        if kind:
            out.append((kind, ast.unparse(sub.value), sub))
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            for value in flow.defs.get(sub.id, ()):
                kind = _time_slice(value)
                if kind:
                    out.append((kind, ast.unparse(value.value), value))
                elif isinstance(value, ast.Call) and _callee(value) in ("cat", "pad") and not any(
                    _time_slice(inner) == "cur" for inner in ast.walk(value)
                ):
                    for inner in ast.walk(value):
                        if _time_slice(inner) == "prev":
                            out.append(("prev_full", ast.unparse(inner.value), inner))
    return out


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _shift_pair(node: ast.BinOp, flow) -> ast.Subscript | None:
    """The ``x[:, :-1]`` term when NODE adds it to the current positions of the same tensor, else None."""
    found = _slices(node, flow)
    curs = {base for kind, base, _ in found if kind == "cur"}
    direct = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for kind, base, sub in found:
        if kind == "prev" and base in curs:
            return sub
        if kind == "prev_full" and base in direct:
            return sub
    return None


def _masked(node: ast.AST, flow) -> bool:
    """True when a name the expression depends on is defined by an (in)equality test: a boundary mask."""
    def is_mask(n: ast.AST) -> bool:
        return isinstance(n, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in n.ops)
    return flow.find_origin(node, is_mask) is not None

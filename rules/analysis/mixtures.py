"""Mixtures of per-token experts scored on the gold token: an expert that does not read the scored token.

A mixture scored as `logsumexp(log w_k - nll_k)` over experts stacked per position is a distribution over the
vocabulary only if every expert's `nll_k` is the negative log-probability of the scored token under a distribution
of its own. An expert whose value at a position does not depend on the scored token at all (the model's entropy, a
confidence, a running loss) gives every candidate token the same probability: summed over the vocabulary that is
V times it, not 1, so the mixture's score is not a probability (the unnormalised-cache ruling on PR #779/#982). A
constant expert (`torch.full(..., log(V))`, the uniform distribution) is the exception: it is normalised.

The scored token is recognised by use, not by name: what a `gather` picks from a distribution, or what indexes the
last axis of a probability table, in the same function as the stack.
"""

from __future__ import annotations

import ast

from rules.analysis.dataflow import FunctionFlow, ScriptFacts, names_used, walk_shallow
from rules.analysis.graph import last_name

_STACKS = {"stack", "cat", "column_stack", "dstack"}
_CONSTANT_CALLS = {"full", "full_like", "zeros", "zeros_like", "ones", "ones_like", "log", "tensor", "float", "int",
                   "to", "expand", "expand_as", "reshape", "view", "unsqueeze", "len", "size"}
_MIXERS = {"logsumexp", "log_softmax"}


def target_free_experts(facts: ScriptFacts, scope: ast.AST) -> list[tuple[ast.Call, ast.expr, ast.AST]]:
    """(stack call, expert, where the expert is computed) for every stack of three or more per-token experts in SCOPE, two or more of them read at
    the scored token, that holds an expert computed without it (and not a constant) and is mixed."""
    flow = facts.flow(scope)
    scored = _scored_tokens(scope)
    if not scored:
        return []
    out = []
    for node in walk_shallow(scope):
        if not (isinstance(node, ast.Call) and last_name(node.func) in _STACKS and node.args
                and isinstance(node.args[0], (ast.List, ast.Tuple)) and len(node.args[0].elts) >= 3):
            continue
        experts = node.args[0].elts
        reads = [bool(flow.closure(e) & scored) for e in experts]
        free = [e for e, r in zip(experts, reads) if not r and not _constant(e, flow)]
        if sum(reads) >= 2 and free and _mixed(facts, scope, flow, node):
            expert = free[0]
            defined: ast.AST = expert
            for _ in range(4):  # followed through plain renames to the expression computing it
                if not (isinstance(defined, ast.Name) and flow.defs.get(defined.id)):
                    break
                defined = flow.defs[defined.id][0]
            out.append((node, expert, defined))
    return out


def _scored_tokens(scope: ast.AST) -> frozenset[str]:
    """Names of what SCOPE picks out of a distribution: `p.gather(dim, y)`, `torch.gather(p, dim, y)`."""
    names: set[str] = set()
    for node in walk_shallow(scope):
        if isinstance(node, ast.Call) and last_name(node.func) == "gather" and node.args:
            index = node.args[-1] if len(node.args) >= 2 else None
            if index is not None:
                names |= names_used(index)
    return frozenset(names)


def _constant(expr: ast.AST, flow: FunctionFlow, depth: int = 0) -> bool:
    """EXPR (and what its names hold) is built from constants and shapes only: a uniform expert."""
    if depth > 4:
        return False
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and last_name(node.func) not in _CONSTANT_CALLS:
            return False
        if isinstance(node, ast.Subscript):
            return False
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in flow.defs:
            if not all(_constant(v, flow, depth + 1) for v in flow.defs[node.id]):
                return False
    return True


def _mixed(facts: ScriptFacts, scope: ast.AST, flow: FunctionFlow, stack: ast.Call) -> bool:
    """The stacked experts reach a log-sum-exp mixture: in SCOPE, or in a function that calls SCOPE's function."""
    held = {name for name, values in flow.defs.items() if any(v is stack or _inside(v, stack) for v in values)}
    for node in walk_shallow(scope):
        if isinstance(node, ast.Call) and last_name(node.func) in _MIXERS \
                and (_inside(node, stack) or flow.closure(node) & held):
            return True
    returned = any(isinstance(n, ast.Return) and n.value is not None and (_inside(n.value, stack)
                                                                          or names_used(n.value) & held)
                   for n in walk_shallow(scope))
    name = getattr(scope, "name", None)
    if not returned or name is None:
        return False
    # A caller that mixes the result itself or hands it to a function that does (`mix(get_experts(...))`).
    mixers = {f.name for f in facts.graph.functions
              if any(isinstance(n, ast.Call) and last_name(n.func) in _MIXERS for n in f.nodes)}
    for func in facts.graph.functions:
        called = {last_name(n.func) for n in func.nodes if isinstance(n, ast.Call)}
        if name in called and (called & _MIXERS or (called - {name}) & mixers):
            return True
    return False


def _inside(outer: ast.AST, inner: ast.AST) -> bool:
    return any(n is inner for n in ast.walk(outer))

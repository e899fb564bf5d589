"""Evaluation passes in a function body: which statements score validation data, which adapt on it."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rules.analysis.graph import FuncInfo


@dataclass
class Pass:
    """One top-level anchor (a call or statement) of a function that scores validation data."""

    anchor: ast.AST
    score_line: int  # where the score is accumulated
    adapts: bool  # it also trains on validation data (a TTT pass) or fills state
    adapt_line: int | None


def scoring_passes(facts, func: FuncInfo) -> list[Pass]:
    """Anchors of FUNC, in order, whose events accumulate a validation score."""
    adapt_nodes = {site.backward.node for site in facts.causality.sites if not site.throwaway and not site.fresh_tensors}
    by_anchor: dict[ast.AST, Pass] = {}
    order: list[ast.AST] = []
    for event in facts.events(func):
        if not facts.taint.resolve(event.labels):
            continue
        anchor = event.anchor
        if anchor not in by_anchor:
            if event.kind != "accum" or event.count_only:
                if event.kind == "backward" and event.node in adapt_nodes:
                    by_anchor[anchor] = Pass(anchor, 0, True, event.line)
                    order.append(anchor)
                continue
            by_anchor[anchor] = Pass(anchor, event.line, False, None)
            order.append(anchor)
        current = by_anchor[anchor]
        if event.kind == "accum" and not event.count_only and not current.score_line:
            current.score_line = event.line
        if event.kind == "backward" and event.node in adapt_nodes:
            current.adapts, current.adapt_line = True, current.adapt_line or event.line
    return [by_anchor[a] for a in order if by_anchor[a].score_line]


def shares_loop(facts, a: ast.AST, b: ast.AST) -> bool:
    """True when A and B sit in the same loop of their function (per-document or per-chunk passes)."""
    return bool(set(map(id, facts.enclosing_loops(a))) & set(map(id, facts.enclosing_loops(b))))


def exclusive_branches(facts, a: ast.AST, b: ast.AST) -> bool:
    """True when A and B sit in different branches of one if/else, so at most one of them runs."""
    parents = facts.graph.parents
    chain_a = []
    node = a
    while node is not None:
        chain_a.append(node)
        node = parents.get(node)
    ids = {id(n): i for i, n in enumerate(chain_a)}
    child, node = b, parents.get(b)
    while node is not None and id(node) not in ids:
        child, node = node, parents.get(node)
    if not isinstance(node, ast.If):
        return False
    child_a = chain_a[ids[id(node)] - 1] if ids[id(node)] else a
    in_body = lambda n: any(n is s for s in node.body)  # noqa: E731
    return in_body(child_a) != in_body(child)


_BODIES = ("body", "orelse", "finalbody", "handlers")
_SCOPE_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Module)


def leaves_before(facts, a: ast.AST, b: ast.AST) -> bool:
    """True when every path from A leaves the function before reaching B: some block enclosing A ends in an
    unconditional `return` or `raise` after A and before B (an opt-in evaluation branch that returns)."""
    parents = facts.graph.parents
    inside_b = {id(n) for n in _chain(parents, b)}
    node = a
    while True:
        parent = parents.get(node)
        if parent is None:
            return False
        if _block_ends(parent, node, inside_b):
            return True
        if id(parent) in inside_b or isinstance(parent, _SCOPE_TYPES):
            return False  # B is reached from this level on (a later statement, a loop's next iteration)
        node = parent


def _chain(parents: dict, node: ast.AST) -> list[ast.AST]:
    out = []
    while node is not None:
        out.append(node)
        node = parents.get(node)
    return out


def _block_ends(parent: ast.AST, node: ast.AST, inside_b: set[int]) -> bool:
    """Whether the statement list holding NODE ends in a return/raise after NODE and before anything holding B."""
    for name in _BODIES:
        block = getattr(parent, name, None) or []
        if not any(s is node for s in block):
            continue
        after = block[next(i for i, s in enumerate(block) if s is node) + 1:]
        for stmt in after:
            if id(stmt) in inside_b:
                return False
            if isinstance(stmt, (ast.Return, ast.Raise)):
                return True
    return False

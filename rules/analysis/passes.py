"""Evaluation passes in a function body: which statements score validation data, which adapt on it, which exits
come between, and which print statements write each pass's score."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from rules.analysis.event import Event
from rules.analysis.flags import MIN_PRINTED_LITERAL
from rules.analysis.graph import FuncInfo, ancestors


@dataclass
class Pass:
    """One top-level anchor (a call or statement) of a function that scores validation data."""

    anchor: ast.AST
    score_line: int  # where the score is accumulated
    adapts: bool  # it also trains on validation data (a TTT pass) or fills state
    adapt_line: int | None
    adapt_events: list[Event] = field(default_factory=list)  # its backward() events on validation data


def scoring_passes(facts, func: FuncInfo) -> list[Pass]:
    """Anchors of FUNC, in order, whose events accumulate a validation score."""
    adapt_nodes = {site.backward.node for site in facts.causality.sites if not site.throwaway and not site.fresh_tensors}
    by_anchor: dict[ast.AST, Pass] = {}
    order: list[ast.AST] = []
    for event in facts.events(func):
        if not facts.taint.resolve(event.labels):
            continue
        anchor = event.anchor
        if event.kind == "accum" and _training_loss(facts, event.node):
            continue  # `epoch_loss += loss.item()` beside `loss.backward()`: a training loss, not a score
        if anchor not in by_anchor:
            if event.kind != "accum" or event.count_only:
                if event.kind == "backward" and event.node in adapt_nodes:
                    by_anchor[anchor] = Pass(anchor, 0, True, event.line, [event])
                    order.append(anchor)
                continue
            by_anchor[anchor] = Pass(anchor, event.line, False, None)
            order.append(anchor)
        current = by_anchor[anchor]
        if event.kind == "accum" and not event.count_only and not current.score_line:
            current.score_line = event.line
        if event.kind == "backward" and event.node in adapt_nodes:
            current.adapts, current.adapt_line = True, current.adapt_line or event.line
            if event not in current.adapt_events:
                current.adapt_events.append(event)
    return [by_anchor[a] for a in order if by_anchor[a].score_line]


def _training_loss(facts, node: ast.AST) -> bool:
    """Whether the accumulation NODE sums a loss that the same loop also back-propagates (the loss being trained
    on, logged as a running average), rather than a score of data the model does not learn from there."""
    value = getattr(node, "value", None)
    if value is None:
        return False
    summed = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    around = ancestors(facts.graph.parents, node)
    loop = next((a for a in around if isinstance(a, (ast.For, ast.While))), None)
    if loop is None or not summed:
        return False
    trained = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "backward"
                  and isinstance(n.func.value, ast.Name) and n.func.value.id in summed for n in ast.walk(loop))
    # A sum the function returns is its score (a score-first pass may score and train on one forward).
    into = {n.id for t in (getattr(node, "targets", None) or [getattr(node, "target", None)]) if t is not None
            for n in ast.walk(t) if isinstance(n, ast.Name)}
    func = next((a for a in around if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    returned = func is not None and any(isinstance(r, ast.Return) and r.value is not None
                                        and into & {n.id for n in ast.walk(r.value) if isinstance(n, ast.Name)}
                                        for r in ast.walk(func))
    return trained and not returned


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
    """True when every path from A leaves the function before reaching B: A is part of a `return` or `raise`
    statement, or some block enclosing A ends in an unconditional `return` or `raise` after A and before B (an
    opt-in evaluation branch that returns)."""
    parents = facts.graph.parents
    inside_b = {id(n) for n in ancestors(parents, b)}
    node = a
    while True:
        if isinstance(node, (ast.Return, ast.Raise)) and id(node) not in inside_b:
            return True  # A is evaluated as part of the function's result: `if lora: return ttt_pass(...)`
        parent = parents.get(node)
        if parent is None:
            return False
        if _block_ends(parent, node, inside_b):
            return True
        if id(parent) in inside_b or isinstance(parent, _SCOPE_TYPES):
            return False  # B is reached from this level on (a later statement, a loop's next iteration)
        node = parent




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


def may_leave(stmt: ast.AST) -> bool:
    """The rest of STMT's block may not run after it: a return in it, or a break or continue of a loop around it."""
    todo = [(stmt, False)]
    while todo:
        node, in_loop = todo.pop()
        if isinstance(node, ast.Return) or (isinstance(node, (ast.Break, ast.Continue)) and not in_loop):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend((c, in_loop or isinstance(node, (ast.For, ast.AsyncFor, ast.While)))
                        for c in ast.iter_child_nodes(node))
    return False


# ---- what a pass prints ------------------------------------------------------------------------------------------
_MAX_PRINT_DEPTH = 5


@dataclass(frozen=True)
class Printed:
    """A line a pass prints: the print statement, and the pattern of its line as this pass calls it."""

    stmt: ast.Expr
    pattern: str


def print_pattern(stmt: ast.AST, bindings: dict[str, str] | None = None) -> str | None:
    """The regular expression of the line a call statement prints (its first argument a string or an f-string with
    at least MIN_PRINTED_LITERAL literal characters), formatted parameters bound to constant strings filled in."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and stmt.value.args):
        return None
    arg = stmt.value.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        parts: list[str | None] = [arg.value]
    elif isinstance(arg, ast.JoinedStr):
        parts = []
        for value in arg.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value.value, ast.Name) and value.format_spec is None and value.conversion == -1 \
                    and value.value.id in (bindings or {}):
                parts.append(bindings[value.value.id])  # type: ignore[index]
            else:
                parts.append(None)
    else:
        return None
    if len("".join(p for p in parts if p).strip()) < MIN_PRINTED_LITERAL:
        return None
    return "".join(re.escape(p) if p is not None else ".+?" for p in parts if p != "").strip()


def printed_by(facts, func: FuncInfo, p: Pass) -> list[Printed]:
    """The lines pass P of FUNC prints (see printed_at, from the pass's anchor)."""
    return printed_at(facts, func, p.anchor)


def printed_at(facts, func: FuncInfo, anchor: ast.AST) -> list[Printed]:
    """The lines the expression ANCHOR of FUNC leads to printing: a print around it, prints after it that read the
    values its statement binds (and what is computed from them), and prints inside the script functions that run it
    or get those values (a constant string passed for a formatted parameter is filled in)."""
    around = _chain_up(facts.graph.parents, anchor, func.node)
    stmt = next((n for n in around if isinstance(n, ast.stmt)), None)
    out = [Printed(n, print_pattern(n)) for n in around  # type: ignore[arg-type]
           if isinstance(n, ast.Expr) and print_pattern(n) is not None]
    carriers = [n for n in facts.graph.subtree(anchor) if isinstance(n, ast.Call)]
    carriers += [n for n in around[1:] if isinstance(n, ast.Call)]  # `report("ttt", <the pass>)`
    if stmt is not None:
        printed, calls = _printed_from_values(facts, func, stmt)
        out.extend(printed)
        carriers.extend(calls)
    out.extend(_printed_in_callees(facts, func, carriers))
    return out


def _chain_up(parents: dict, node: ast.AST, stop: ast.AST) -> list[ast.AST]:
    out = []
    while node is not None and node is not stop:
        out.append(node)
        node = parents.get(node)
    return out


def _bound_names(stmt: ast.AST) -> set[str]:
    """Names a statement gives the pass's value to: assignment targets, or the receiver it is appended to."""
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign, ast.For)):
        targets = [stmt.target]
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute):
        targets = [stmt.value.func.value]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _printed_from_values(facts, func: FuncInfo, stmt: ast.AST) -> tuple[list[Printed], list[ast.Call]]:
    """Prints after STMT that read what it binds (or what is computed from that), and the calls handed it."""
    names = _bound_names(stmt)
    if not names:
        return [], []
    end = (getattr(stmt, "end_lineno", stmt.lineno), getattr(stmt, "end_col_offset", 0))
    out: list[Printed] = []
    calls: list[ast.Call] = []
    for node in func.nodes:
        if isinstance(node, ast.Call) and (node.lineno, node.col_offset) > end and any(
                isinstance(n, ast.Name) and n.id in names for a in [*node.args, *node.keywords] for n in ast.walk(a)):
            calls.append(node)
        if not isinstance(node, ast.stmt) or (node.lineno, node.col_offset) <= end:
            continue
        reads = {n.id for n in facts.graph.subtree(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        if isinstance(node, ast.Expr):
            pattern = print_pattern(node)
            if pattern is not None and reads & names:
                out.append(Printed(node, pattern))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            value_reads = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            if value_reads & names:
                names |= _bound_names(node)
    return out, calls


def _printed_in_callees(facts, func: FuncInfo, calls: list[ast.Call]) -> list[Printed]:
    """Prints of the script functions CALLS run, the direct callees specialised by the constant strings passed."""
    out: list[Printed] = []
    seen: set[int] = set()
    todo = [(callee, _constant_args(callee, call, offset), 1) for call in calls
            for callee, offset in _callees(facts, func, call)]
    while todo:
        callee, bindings, depth = todo.pop()
        key = hash((id(callee), tuple(sorted(bindings.items()))))
        if key in seen:
            continue
        seen.add(key)
        for node in callee.nodes:
            if isinstance(node, ast.Expr):
                pattern = print_pattern(node, bindings)
                if pattern is not None:
                    out.append(Printed(node, pattern))
            if isinstance(node, ast.Call) and depth < _MAX_PRINT_DEPTH:
                todo.extend((inner, {}, depth + 1) for inner, _ in _callees(facts, callee, node))
    return out


def _callees(facts, func: FuncInfo, call: ast.Call) -> list[tuple[FuncInfo, int]]:
    """The script functions CALL runs: its resolved callee, and a script function passed to it as an argument."""
    out = []
    resolved = facts.graph.resolved.get(call)
    if resolved is not None and resolved[0] is not func:
        out.append(resolved)
    for arg in call.args:
        if isinstance(arg, ast.Name):
            passed = facts.graph.resolve(ast.Call(func=arg, args=[], keywords=[]), func)
            if passed is not None and passed[0] is not func:
                out.append((passed[0], -1))
    return out


def _constant_args(callee: FuncInfo, call: ast.Call, offset: int) -> dict[str, str]:
    if offset < 0:
        return {}
    out: dict[str, str] = {}
    for i, arg in enumerate(call.args):
        if isinstance(arg, ast.Starred):
            break
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and i + offset < len(callee.params):
            out[callee.params[i + offset]] = arg.value
    for kw in call.keywords:
        if kw.arg in callee.params and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            out[kw.arg] = kw.value.value
    return out


def claimed_elsewhere(facts, func: FuncInfo, passes: list[Pass], later: Pass, claimed) -> tuple | None:
    """(print statement, its pass, claimed line) when CLAIMED, the run-output lines the claimed score was read from,
    show it printed only by passes other than LATER; None when they do not show it (no claim evidence, a matching
    line that the later pass or no pass of FUNC prints)."""
    if not claimed:
        return None

    def matches(pattern: str) -> str | None:
        compiled = re.compile(pattern)
        return next((line for line in claimed if compiled.search(line)), None)

    owners: dict[ast.AST, list[Pass]] = {}
    for p in passes:
        for printed in printed_by(facts, func, p):
            if matches(printed.pattern) is not None:
                owners.setdefault(printed.stmt, []).append(p)
    printing = [(stmt, line) for stmt in facts.graph.of_type(ast.Expr)
                if (pattern := print_pattern(stmt)) is not None and (line := matches(pattern)) is not None]
    if not printing or any(not owners.get(stmt) or any(p is later for p in owners[stmt]) for stmt, _ in printing):
        return None
    stmt, line = printing[0]
    return stmt, owners[stmt][0], line

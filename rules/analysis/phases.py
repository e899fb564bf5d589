"""Run phases: the training loop (the last loop running backward() and step() on training data, itself or in the
script functions it calls) and what runs after it (the rest of that function and of its callers, and every function
they call). Computed once per tree over ``rules.analysis.dataflow``'s facts.
"""

from __future__ import annotations

import ast
import weakref
from dataclasses import dataclass

from rules.analysis.dataflow import (
    FUNC_TYPES,
    LOOP_TYPES,
    TRAIN_NAME,
    VAL_NAME,
    ScriptFacts,
    is_train_source,
    last_name,
    train_reader_classes,
)


@dataclass
class Phases:
    """Where training ends and what runs after it."""

    training_loop: ast.AST | None
    post_statements: list[ast.AST]  # statements after the training loop (its function and callers')
    post_functions: list[ast.AST]  # functions those statements call, transitively

    def is_post_training(self, node: ast.AST, facts: ScriptFacts) -> bool:
        """True when NODE runs after the training loop."""
        if self.training_loop is None:
            return False
        for stmt in self.post_statements:
            if _contains(stmt, node):
                return True
        func = facts.enclosing_function(node)
        return any(func is f for f in self.post_functions) and not _contains(self.training_loop, node)


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    lo, hi = getattr(outer, "lineno", None), getattr(outer, "end_lineno", None)
    line = getattr(inner, "lineno", None)
    if lo is None or hi is None or line is None or not (lo <= line <= hi):
        return False
    return any(sub is inner for sub in ast.walk(outer))


def _runs_backward_and_step(loop: ast.AST, facts: ScriptFacts) -> bool:
    """LOOP calls `.backward()` and an optimizer's `.step()`, itself or in script functions it calls (a closure
    `apply_optimizers(step)` looping over the optimizers)."""
    calls: set[str] = set()
    todo, seen = [(loop, 0)], set()
    while todo:
        node, depth = todo.pop()
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            calls.add(last_name(call.func))
            callee = facts.graph.resolved.get(call)
            if callee is not None and depth < 3 and id(callee[0]) not in seen:
                seen.add(id(callee[0]))
                todo.append((callee[0].node, depth + 1))
    return "backward" in calls and "step" in calls


_PHASES: "weakref.WeakKeyDictionary[ast.Module, Phases]" = weakref.WeakKeyDictionary()


def phases(facts: ScriptFacts) -> Phases:
    """The training loop and the code after it; computed once per tree."""
    cached = _PHASES.get(facts.tree)
    if cached is not None:
        return cached
    readers = train_reader_classes(facts)
    best: tuple[ast.AST, ast.AST] | None = None
    all_loops = [loop for info in facts.graph.functions for loop in info.loops]
    trains: dict[int, bool] = {}  # loop -> it runs backward and step (asked again for every loop nested in it)

    def trains_in(loop: ast.AST) -> bool:
        if id(loop) not in trains:
            trains[id(loop)] = _runs_backward_and_step(loop, facts)
        return trains[id(loop)]

    for node in all_loops:
        if not trains_in(node):
            continue
        if any(isinstance(p, LOOP_TYPES) and trains_in(p) for p in facts.enclosing(node, LOOP_TYPES)):
            continue  # keep the outermost loop
        func = facts.enclosing_function(node)
        flow = facts.flow(func)
        used = flow.closure(node)
        reads_train = any(TRAIN_NAME.match(n) for n in used) or bool(used & readers)
        if not reads_train:
            reads_train = any(is_train_source(v) for n in used for d in flow.defs.get(n, ()) for v in ast.walk(d))
        if not reads_train:
            # A loop drawing batches from a loader passed in (``loader.next_batch()``) is training too.
            reads_train = any(
                isinstance(n, ast.Call) and last_name(n.func) == "next_batch" for n in ast.walk(node)
            ) and not any(VAL_NAME.match(n) for n in used)
        if not reads_train:
            continue
        if best is None or node.end_lineno > best[0].end_lineno:
            best = (node, func)
    if best is None:
        result = Phases(None, [], [])
        _PHASES[facts.tree] = result
        return result
    loop, func = best
    post: list[ast.AST] = []
    _statements_after(loop, facts, post)
    # Callers of the training function continue after the call.
    seen_funcs = {id(func)}
    todo = [func]
    while todo:
        current = todo.pop()
        if not isinstance(current, FUNC_TYPES):
            continue
        for node in _calls_named(facts, current.name):
            stmt = _statement_of(node, facts)
            if stmt is not None:
                _statements_after(stmt, facts, post)
            caller = facts.enclosing_function(node)
            if id(caller) not in seen_funcs:
                seen_funcs.add(id(caller))
                todo.append(caller)
    functions = [f for f in facts.reachable_functions(post) if f is not func]
    result = Phases(loop, post, functions)
    _PHASES[facts.tree] = result
    return result


def _calls_named(facts: ScriptFacts, name: str) -> list[ast.Call]:
    return [n for info in facts.graph.functions for n in info.nodes if isinstance(n, ast.Call) and last_name(n.func) == name]


def _statement_of(node: ast.AST, facts: ScriptFacts) -> ast.AST | None:
    current: ast.AST | None = node
    while current is not None and not isinstance(current, ast.stmt):
        current = facts.parents.get(current)
    return current


def _statements_after(stmt: ast.AST, facts: ScriptFacts, out: list[ast.AST]) -> None:
    """Append the statements that follow STMT in its block and in every enclosing block up to its function."""
    current = stmt
    while current is not None and not isinstance(current, (*FUNC_TYPES, ast.Module)):
        parent = facts.parents.get(current)
        if parent is None:
            return
        for field_name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(parent, field_name, None)
            if isinstance(block, list) and any(s is current for s in block):
                index = next(i for i, s in enumerate(block) if s is current)
                out.extend(block[index + 1 :])
        current = parent  # inside an enclosing loop the next iterations come after too: not followed



# ----------------------------------------------------------------------------------------------- value origins

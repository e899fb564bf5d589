"""Reaching definitions within one function: which assignments of a local name can reach each read of it.

This is what makes the taint flow-sensitive. `x, y = next(train_batches)` early in a function and
`x, y = val_window(i)` later are two definitions; a read of `x` between them sees only the first. Statements are
interpreted in program order over a state "name -> the definitions that may hold it":
- `if` / `match` arms and `try` handlers join their states; a branch that ends in `return`, `raise`, `break` or
  `continue` contributes nothing to the code after it (`break` and `continue` feed the loop's exit and head);
- loops are iterated to a fixed point, so a definition at the end of the body reaches reads at its top;
- nested functions, lambdas and class bodies are other scopes: their reads keep the flow-insensitive meaning
  (closures see every definition); names declared `global` or `nonlocal` are left out for the same reason.
A definition is the Store-context ``ast.Name`` node (or the function's ``ast.arg``); a read that no definition of
this function reaches (a global, a builtin) is absent from the result.
"""

from __future__ import annotations

import ast

from rules.analysis.graph import COMPREHENSION_TYPES

_SCOPES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef})

State = dict[str, frozenset]  # name -> definition nodes


def _join(*states: State | None) -> State | None:
    live = [s for s in states if s is not None]
    if not live:
        return None  # no path reaches here
    out: State = dict(live[0])
    for state in live[1:]:
        for name, defs in state.items():
            out[name] = out.get(name, frozenset()) | defs
    return out


class ReachingDefinitions:
    """For one function (or the module body): reads -> reaching definitions, and augmented targets -> the
    definitions they update."""

    def __init__(self, scope_node: ast.AST, params: list[ast.arg]) -> None:
        self.reads: dict[ast.Name, frozenset] = {}
        self.updates: dict[ast.Name, frozenset] = {}  # `x += v`: the target Name -> the definitions of x before
        self._excluded = _declared_elsewhere(scope_node)
        self._loop_exits: list[list[State]] = []
        self._loop_heads: list[list[State]] = []
        self._items: dict[ast.AST, list[tuple[str, ast.Name]]] = {}  # expression -> its reads and walrus targets
        state: State = {p.arg: frozenset({p}) for p in params if p.arg not in self._excluded}
        body = scope_node.body if isinstance(getattr(scope_node, "body", None), list) else []
        self._block(body, state)

    # ---- statements ----------------------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], state: State | None) -> State | None:
        for stmt in body:
            if state is None:
                return None  # the rest of the block is unreachable
            state = self._stmt(stmt, state)
        return state

    def _stmt(self, stmt: ast.stmt, state: State) -> State | None:
        kind = type(stmt)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            for deco in stmt.decorator_list:  # type: ignore[attr-defined]
                self._expr(deco, state)
            return self._define_name(stmt.name, stmt, state)  # type: ignore[attr-defined]
        if kind is ast.Return or kind is ast.Raise:
            for child in ast.iter_child_nodes(stmt):
                self._expr(child, state)
            return None
        if kind is ast.Break:
            if self._loop_exits:
                self._loop_exits[-1].append(state)
            return None
        if kind is ast.Continue:
            if self._loop_heads:
                self._loop_heads[-1].append(state)
            return None
        if kind is ast.If:
            self._expr(stmt.test, state)
            return _join(self._block(stmt.body, dict(state)), self._block(stmt.orelse, dict(state)))
        if kind in (ast.For, ast.AsyncFor, ast.While):
            return self._loop(stmt, state)
        if kind in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                self._expr(item.context_expr, state)
                if item.optional_vars is not None:
                    state = self._assign(item.optional_vars, state)
            return self._block(stmt.body, state)
        if kind is ast.Try or kind.__name__ == "TryStar":
            return self._try(stmt, state)
        if kind.__name__ == "Match":
            self._expr(stmt.subject, state)
            arms = []
            for case in stmt.cases:
                arm = dict(state)
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None)
                    if isinstance(name, str):
                        arm = self._define_name(name, node, arm)
                if case.guard is not None:
                    self._expr(case.guard, arm)
                arms.append(self._block(case.body, arm))
            return _join(state, *arms)
        if kind is ast.Assign:
            self._expr(stmt.value, state)
            for target in stmt.targets:
                state = self._assign(target, state)
            return state
        if kind is ast.AnnAssign:
            if stmt.value is not None:
                self._expr(stmt.value, state)
                return self._assign(stmt.target, state)
            return state
        if kind is ast.AugAssign:
            self._expr(stmt.value, state)
            target = stmt.target
            if isinstance(target, ast.Name) and target.id not in self._excluded:
                self.updates[target] = state.get(target.id, frozenset())
                return {**state, target.id: frozenset({target})}
            self._expr(target, state)
            return state
        if kind in (ast.Import, ast.ImportFrom):
            for alias in stmt.names:
                name = (alias.asname or alias.name).split(".")[0]
                if name != "*":
                    state = self._define_name(name, alias, state)
            return state
        if kind is ast.Delete:
            state = dict(state)
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    state.pop(target.id, None)
                else:
                    self._expr(target, state)
            return state
        for child in ast.iter_child_nodes(stmt):  # Expr, Assert, Global, Nonlocal, Pass, ...
            self._expr(child, state)
        return state

    def _loop(self, stmt: ast.stmt, state: State) -> State | None:
        is_for = not isinstance(stmt, ast.While)
        if is_for:
            self._expr(stmt.iter, state)  # type: ignore[attr-defined]
        head: State = dict(state)
        exits: list[State] = []
        for _ in range(8):  # definitions only grow; a few rounds reach the fixed point
            self._loop_exits.append([])
            self._loop_heads.append([])
            entry = self._assign(stmt.target, dict(head)) if is_for else dict(head)  # type: ignore[attr-defined]
            if not is_for:
                self._expr(stmt.test, head)  # type: ignore[attr-defined]
            end = self._block(stmt.body, entry)
            exits = self._loop_exits.pop()
            heads = self._loop_heads.pop()
            new_head = _join(head, end, *heads) or head
            if new_head == head:
                break
            head = new_head
        after = self._block(stmt.orelse, dict(head)) if stmt.orelse else head
        return _join(after, *exits)

    def _try(self, stmt: ast.stmt, state: State) -> State | None:
        seen: list[State] = [state]
        current: State | None = state
        for inner in stmt.body:  # type: ignore[attr-defined]
            if current is None:
                break
            current = self._stmt(inner, current)
            if current is not None:
                seen.append(current)
        on_error = _join(*seen) or state  # a handler may start after any statement of the body
        arms = [self._block(stmt.orelse, current) if current is not None else None]  # type: ignore[attr-defined]
        for handler in stmt.handlers:  # type: ignore[attr-defined]
            arm = dict(on_error)
            if handler.type is not None:
                self._expr(handler.type, arm)
            if handler.name:
                arm = self._define_name(handler.name, handler, arm)
            arms.append(self._block(handler.body, arm))
        out = _join(*arms)
        if stmt.finalbody:  # type: ignore[attr-defined]
            final_in = _join(out, on_error) or on_error
            final_out = self._block(stmt.finalbody, dict(final_in))  # type: ignore[attr-defined]
            return final_out if out is not None else None
        return out

    # ---- expressions and targets -----------------------------------------------------------------------------
    def _expr(self, node: ast.AST | None, state: State) -> None:
        """Record the reads in NODE (not inside nested scopes); walrus targets are applied in place."""
        if node is None:
            return
        items = self._items.get(node)
        if items is None:
            items = self._items[node] = _reads_and_walrus(node)
        for kind, name in items:
            if kind == "r":
                if name.id in state:
                    self.reads[name] = state[name.id]
            elif name.id not in self._excluded:
                state[name.id] = frozenset({name})

    def _assign(self, target: ast.AST, state: State) -> State:
        if isinstance(target, ast.Name):
            if target.id in self._excluded:
                return state
            return {**state, target.id: frozenset({target})}
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                state = self._assign(elt.value if isinstance(elt, ast.Starred) else elt, state)
            return state
        if isinstance(target, ast.Starred):
            return self._assign(target.value, state)
        self._expr(target, state)  # x[i] = v, x.a = v: reads x
        return state

    def _define_name(self, name: str, node: ast.AST, state: State) -> State:
        if name in self._excluded:
            return state
        return {**state, name: frozenset({node})}


def _declared_elsewhere(scope_node: ast.AST) -> set[str]:
    """Names this scope declares global or nonlocal: other scopes assign them, so order says nothing."""
    out: set[str] = set()
    stack = list(ast.iter_child_nodes(scope_node))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
        if type(node) not in _SCOPES:
            stack.extend(ast.iter_child_nodes(node))
    return out


def _reads_and_walrus(node: ast.AST) -> list[tuple[str, ast.Name]]:
    """("r", Name) for each read and ("w", Name) for each walrus target of an expression, in evaluation order
    (roughly), leaving out nested scopes and the names a comprehension binds for itself."""
    out: list[tuple[str, ast.Name]] = []
    stack: list[tuple[ast.AST, frozenset]] = [(node, frozenset())]
    while stack:
        current, bound = stack.pop()
        kind = type(current)
        if kind is ast.Name:
            if isinstance(current.ctx, ast.Load) and current.id not in bound:
                out.append(("r", current))
            continue
        if kind in _SCOPES:
            if kind is ast.Lambda:
                stack.extend((d, bound) for d in [*current.args.defaults, *current.args.kw_defaults] if d is not None)
            continue
        if kind is ast.NamedExpr:
            out.extend(_reads_and_walrus(current.value))
            if isinstance(current.target, ast.Name):
                out.append(("w", current.target))
            continue
        if kind in COMPREHENSION_TYPES:
            inner = bound | {n.id for gen in current.generators for n in ast.walk(gen.target) if type(n) is ast.Name}
            first = current.generators[0].iter
            stack.append((first, bound))  # the first iterable is evaluated outside the comprehension
            stack.extend((child, inner) for child in ast.iter_child_nodes(current) if child is not first
                         and child is not current.generators[0])
            gen = current.generators[0]
            stack.extend((child, inner) for child in [gen.target, *gen.ifs])
            continue
        stack.extend((child, bound) for child in reversed(list(ast.iter_child_nodes(current))))
    return out

"""Score-before-update analysis shared by the causality rules (#1017 C3/C4), read as ``facts.causality``.

An *adaptation site* is a `.backward()` on a loss derived from validation data in a function that also steps an
optimizer or mutates parameters. For each one we follow the calls that lead to it (up to the functions nobody
calls) and decide:

* **score-first**: on the way, a loop encloses the update and, earlier in the same iteration, accumulates a score
  from validation data (the merged chunked TTT shape: score chunk c, then train on chunk c);
* **pre-eval**: no such loop exists on some path that carries validation data to the update, i.e. the tokens are
  trained on before (or without) being scored in that pass.

Only scores count (`is_score`): the loss of an update summed for a log line (`epoch_loss += loss.item()` next to
`loss.backward()`) is a training loss, which proves no score-first loop and is no later score.

It also records where validation data is scored after the update (the "same tokens scored later" evidence) and
whether the trained parameters belong to a throwaway object deleted right after (a compile warm-up).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Protocol

from rules.analysis.event import Event
from rules.analysis.graph import FuncInfo, Graph, inside, last_name, mentions
from rules.analysis.taint import EMPTY, Taint, guard_arms


class FactsView(Protocol):
    """What the score-before-update analysis reads of rules.analysis.facts.Facts (which builds a Causality over itself)."""

    graph: Graph
    taint: Taint

    def events(self, func: FuncInfo) -> list[Event]: ...

    def enclosing_loops(self, node: ast.AST) -> list[ast.AST]: ...


_MAX_DEPTH = 6


@dataclass
class Path:
    """One chain of calls from the function of the update up to a function nobody calls."""

    frames: list[tuple[FuncInfo, ast.AST]]  # (function, node in it leading to the update), innermost first
    vals: frozenset  # validation sources carried to the update along this path
    score_loop: ast.AST | None = None  # the loop proving score-first, when found
    later_score: tuple[FuncInfo, Event] | None = None  # validation scored after the update

    @property
    def nodes(self) -> list[ast.AST]:
        """The path's call nodes, and the flag-test arms all of its validation sources came through."""
        return [node for _, node in self.frames] + guard_arms(self.vals)


@dataclass
class AdaptSite:
    """A gradient update on validation data and how each call path reaches it."""

    home: FuncInfo
    backward: Event
    step: Event | None
    paths: list[Path] = field(default_factory=list)
    fresh_tensors: str | None = None  # per-batch tensors (SLOT delta/bias) optimised instead of model weights
    throwaway: str | None = None  # name of the locally built, then deleted, object whose parameters are trained

    @property
    def pre_eval_paths(self) -> list[Path]:
        """Paths with no score-first loop; empty for SLOT-style per-batch tensors (the SLOT rule's business)."""
        if self.fresh_tensors:
            return []
        return [p for p in self.paths if p.score_loop is None]


class Causality:
    """Adaptation sites of one module, computed once."""

    def __init__(self, facts: FactsView) -> None:
        self.facts = facts
        self.sites: list[AdaptSite] = []
        self._trained: dict[FuncInfo, set] = {}  # definitions of the tensors each function calls backward on
        self._scores: dict[ast.AST, bool] = {}
        for func in facts.graph.functions:
            own = [e for e in facts.events(func) if not e.chain]
            all_events = facts.events(func)
            for event in own:
                if event.kind != "backward" or not facts.taint.resolve(event.labels):
                    continue
                step = next((e for e in all_events if e.kind in {"step", "mutate"} and e.pos > event.pos), None)
                if step is None:
                    continue  # gradients only (Hessians, saliency): no update
                site = AdaptSite(func, event, step)
                self._collect_paths(site, func, event.node, event.labels, [], 0)
                if site.paths:
                    site.throwaway = self._throwaway(func, step)
                    site.fresh_tensors = self._fresh_tensors(func, step)
                    self.sites.append(site)

    # ---- paths -----------------------------------------------------------------------------------------------
    def _collect_paths(self, site: AdaptSite, func: FuncInfo, anchor: ast.AST, labels: frozenset,
                       frames: list, depth: int) -> None:
        frames = frames + [(func, anchor)]
        score = self._score_first(func, anchor)
        if score is not None:
            vals = self.facts.taint.resolve(labels)
            if vals:
                site.paths.append(Path(frames, vals, score[0], score[1]))
            return
        concrete = frozenset(label for label in labels if label[0] == "VAL")
        if not func.call_sites or depth >= _MAX_DEPTH:
            vals = self.facts.taint.resolve(labels)
            if vals:
                site.paths.append(Path(frames, vals, later_score=self._later_score(frames)))
            return
        fid = self.facts.taint.fid[id(func)]
        for caller, call in func.call_sites:
            if self.dead_at_call(func, anchor, call):
                continue  # `if order == "train_first":` with the caller leaving order at its default
            outer = set(concrete)
            for label in labels:
                if label[0] == "P" and label[1] == fid:
                    outer |= self._arg_labels(func, caller, call, label[2])
                elif label[0] == "P":
                    outer.add(label)
            self._collect_paths(site, caller, call, frozenset(outer), frames, depth + 1)

    def dead_at_call(self, func: FuncInfo, anchor: ast.AST, call: ast.Call) -> bool:
        """True when ANCHOR sits in a branch of FUNC that cannot run for this CALL: an `if` testing parameters
        that the call passes as constants or leaves at their constant defaults, evaluating the other way."""
        parents = self.facts.graph.parents
        values = None
        child, parent = anchor, parents.get(anchor)
        while parent is not None and parent is not func.node:
            if isinstance(parent, (ast.If, ast.IfExp)) and child is not parent.test:
                if values is None:
                    values = _constant_params(func, call, self.facts.graph.resolved[call][1])
                    if not values:
                        return False
                outcome = _evaluate(parent.test, values)
                in_body = any(child is n for n in parent.body) if isinstance(parent, ast.If) else child is parent.body
                if outcome is not None and outcome != in_body:
                    return True
            child, parent = parent, parents.get(parent)
        return False

    def _arg_labels(self, callee: FuncInfo, caller: FuncInfo, call: ast.Call, index: int) -> frozenset:
        offset = self.facts.graph.resolved[call][1]
        taint = self.facts.taint
        if offset and index == 0 and isinstance(call.func, ast.Attribute):
            return taint.labels(call.func.value, caller)
        position = index - offset
        if 0 <= position < len(call.args) and not isinstance(call.args[position], ast.Starred):
            return taint.labels(call.args[position], caller)
        for kw in call.keywords:
            if kw.arg == callee.params[index]:
                return taint.labels(kw.value, caller)
        return EMPTY

    def _score_first(self, func: FuncInfo, anchor: ast.AST) -> tuple[ast.AST, Event] | None:
        """A loop around ANCHOR in FUNC whose iteration scores validation data before reaching ANCHOR."""
        loops = self.facts.enclosing_loops(anchor)
        if not loops:
            return None
        anchor_pos = (anchor.lineno, anchor.col_offset)
        for loop in loops:
            for event in self.facts.events(func):
                if event.kind == "accum" and not event.count_only and event.pos[:2] > anchor_pos \
                        and self._inside(event.anchor, loop) and self.facts.taint.resolve(event.labels) \
                        and self.prefix_only(func, anchor, event.anchor) and self.is_score(event):
                    return loop, event
                if event.kind != "accum" or event.count_only or event.pos[:2] >= anchor_pos:
                    continue
                if event.anchor is anchor or not self._inside(event.anchor, loop):
                    continue
                if self.facts.taint.resolve(event.labels) and self.is_score(event):
                    return loop, event
        return None

    def prefix_only(self, func: FuncInfo, update: ast.AST, score: ast.AST) -> bool:
        """True when the update trains on `x[:s]` and the score reads `x[s:...]`: adapting on the context that
        precedes the scored positions (causal, e.g. a per-window bias fitted on already-scored context)."""
        uppers = {u for _, u in _slice_bounds(func, update)}
        lowers = {lo for lo, _ in _slice_bounds(func, score)}
        return bool((uppers - {None}) & (lowers - {None}))

    def _inside(self, node: ast.AST, ancestor: ast.AST) -> bool:
        return inside(node, ancestor, self.facts.graph.parents)

    def _later_score(self, frames: list[tuple[FuncInfo, ast.AST]]) -> tuple[FuncInfo, Event] | None:
        """The first validation score accumulated after the update, looking outwards along the call path."""
        for func, anchor in frames:
            end = (getattr(anchor, "end_lineno", anchor.lineno), getattr(anchor, "end_col_offset", 0))
            for event in self.facts.events(func):
                if event.kind == "accum" and not event.count_only and event.pos[:2] > end \
                        and event.anchor is not anchor and self.facts.taint.resolve(event.labels) \
                        and self.is_score(event):
                    return func, event
        return None

    # ---- scores and training losses ------------------------------------------------------------------------
    def reaching(self, func: FuncInfo) -> dict[ast.Name, frozenset]:
        """Each read of a local name in FUNC -> the definitions (Store names, parameters) that reach it, as the
        taint computed them (empty where the function was too deep to walk)."""
        chains = self.facts.taint.chains.get(func)
        return chains.reads if chains is not None else {}

    def is_score(self, event: Event) -> bool:
        """True when an accumulation is a score: its value is no view or copy of a tensor its function calls
        `.backward()` on (a no-grad, inference or separate forward), or it is and the total reaches what the
        function returns or keeps (a reported detached loss). A trained loss summed only for log lines is not."""
        node, hit = event.node, self._scores.get(event.node)
        if hit is None:
            func = self.facts.graph.scope_of.get(node, self.facts.graph.module)
            target, values = _accumulation(node)
            summed = set().union(*(self.tensor_defs(func, v) for v in values))
            if summed and func not in self._trained:
                operands = (backward_operand(e.node) for e in self.facts.events(func) if e.kind == "backward"
                            and not e.chain)
                self._trained[func] = set().union(*(self.tensor_defs(func, b) for b in operands if b is not None))
            hit = self._scores[node] = not (summed & self._trained.get(func, set())) or self._kept(func, node, target)
        return hit

    def tensor_defs(self, func: FuncInfo, expr: ast.AST, depth: int = 0) -> set:
        """The definitions of the tensors EXPR is a view, reduction or copy of (`loss` in `loss.item()`,
        `loss.detach() * n`), through local assignments; a call's arguments are inputs, not views (`model(x, y)`)."""
        reads, parents, out = self.reaching(func), self.facts.graph.parents, set()
        for name in _value_names(expr, reads):
            for definition in reads.get(name, frozenset()) - out:
                out.add(definition)
                value = _bound_value(parents, definition)
                if value is not None and depth < 3:
                    out |= self.tensor_defs(func, value, depth + 1)
        return out

    def _kept(self, func: FuncInfo, accumulation: ast.AST, target: ast.AST | None) -> bool:
        """True when the running total TARGET reaches what FUNC returns, yields or stores on an object, or is read
        after the loops it is summed in (a metric reported once), directly or through names computed from it; a total
        read only by the log lines of those loops (a per-epoch or per-step training loss) is not kept."""
        while isinstance(target, ast.Subscript):
            target = target.value
        if not isinstance(target, ast.Name) or target.id in func.params:
            return True  # self.total, a caller's in-place total
        flows: list[tuple[list[ast.AST], list[ast.AST]]] = []  # (what is read, what takes it in: None for the result)
        for node in func.nodes:
            if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None:
                flows.append(([node.value], [None]))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                flows.append(([node.value], getattr(node, "targets", None) or [node.target]))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in {"append", "extend", "insert", "update", "add", "put"}:
                flows.append((list(node.args), [node.func.value]))
        names, grown = {target.id}, True
        while grown:
            grown = False
            for read, holders in flows:
                if not any(mentions(r, names) for r in read):
                    continue
                for part in (p for h in holders for p in (h.elts if isinstance(h, (ast.Tuple, ast.List)) else [h])):
                    while isinstance(part, ast.Subscript):
                        part = part.value
                    if not isinstance(part, ast.Name):
                        return True  # returned, or stored on an object
                    grown = grown or part.id not in names
                    names.add(part.id)
        loops = self.facts.enclosing_loops(accumulation)
        return not loops or any(type(n) is ast.Name and n.id in names and isinstance(n.ctx, ast.Load)
                                and not self._inside(n, loops[-1]) for n in func.nodes)

    def _fresh_tensors(self, func: FuncInfo, step: Event) -> str | None:
        """Names of local tensors with requires_grad that the stepped optimizer trains (SLOT-style delta, bias)."""
        node = step.node
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            return None
        opt_value = _assigned_value(func, node.func.value.id)
        if not isinstance(opt_value, ast.Call) or not opt_value.args or not isinstance(opt_value.args[0], ast.List):
            return None
        names = [e.id for e in opt_value.args[0].elts if isinstance(e, ast.Name)]
        fresh = [n for n in names if _creates_grad_tensor(func, n)]
        return ", ".join(fresh) if fresh and len(fresh) == len(opt_value.args[0].elts) else None

    # ---- throwaway state -------------------------------------------------------------------------------------
    def _throwaway(self, func: FuncInfo, step: Event) -> str | None:
        """Name of a fresh local object whose parameters the stepped optimizer trains, deleted after use."""
        node = step.node
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            return None
        opt_name = node.func.value.id
        opt_value = _assigned_value(func, opt_name)
        if not isinstance(opt_value, ast.Call):
            return None
        owners = {n.func.value.id for n in ast.walk(opt_value)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                  and n.func.attr in {"parameters", "named_parameters"} and isinstance(n.func.value, ast.Name)}
        for owner in sorted(owners):
            value = _assigned_value(func, owner)
            if not isinstance(value, ast.Call) or owner in func.params:
                continue
            if _deleted_after(func, owner, node.lineno):
                return owner
        return None


def _accumulation(node: ast.AST) -> tuple[ast.AST | None, list[ast.AST]]:
    """The running total an accumulation event adds to (`total += v`, `total = total + v`, `totals.append(v)`),
    and the values it adds."""
    if isinstance(node, (ast.AugAssign, ast.Assign)):
        return (node.target if isinstance(node, ast.AugAssign) else node.targets[0]), [node.value]
    is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    return (node.func.value, list(node.args)) if is_call else (None, [])


def backward_operand(call: ast.AST) -> ast.AST | None:
    """The tensor a backward call differentiates: `loss` in `loss.backward()` or `torch.autograd.backward(loss)`."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return None
    receiver = call.func.value
    if isinstance(receiver, (ast.Name, ast.Attribute)) and last_name(receiver) == "autograd":
        return call.args[0] if call.args else None
    return receiver


def _value_names(expr: ast.AST, reads: dict) -> list[ast.Name]:
    """The local names whose tensor EXPR is a view, reduction or copy of."""
    if isinstance(expr, ast.Name):
        return [expr]
    if isinstance(expr, ast.Call):  # loss.mean(), loss.detach(), loss.sum(dim=-1), float(loss); not model(x, y)
        if isinstance(expr.func, ast.Name) and expr.func.id == "float" and len(expr.args) == 1:
            return _value_names(expr.args[0], reads)
        inputs = [*expr.args, *(k.value for k in expr.keywords)]
        if not isinstance(expr.func, ast.Attribute) or any(n in reads for a in inputs for n in ast.walk(a)):
            return []
        expr = expr.func
    parts = [expr.value] if isinstance(expr, (ast.Attribute, ast.Subscript)) else [expr.left, expr.right] \
        if isinstance(expr, ast.BinOp) else [expr.operand] if isinstance(expr, ast.UnaryOp) else \
        [expr.body, expr.orelse] if isinstance(expr, ast.IfExp) else []
    return [name for part in parts for name in _value_names(part, reads)]


def _bound_value(parents: dict, definition: ast.AST) -> ast.AST | None:
    """The value a plain `name = value` definition binds (None for tuple targets, loop targets, parameters)."""
    parent = parents.get(definition)
    targets = getattr(parent, "targets", None) or [getattr(parent, "target", None)]
    if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and any(t is definition for t in targets):
        return parent.value
    return None




def _assigned_value(func: FuncInfo, name: str) -> ast.AST | None:
    for node in func.nodes:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                    and value.func.attr in {"to", "cuda", "float", "bfloat16"}:
                value = value.func.value  # Adapter(...).to(device)
            return value
    return None


def _deleted_after(func: FuncInfo, name: str, line: int) -> bool:
    """True when the first mention of NAME after LINE (outside the loop body that uses it) is a `del` or a
    re-binding, and the object is never returned or stored elsewhere."""
    for node in func.nodes:
        if isinstance(node, ast.Return) and node.value is not None and any(
            isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.value)
        ):
            return False
        if isinstance(node, ast.Assign) and any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets) \
                and isinstance(node.value, ast.Name) and node.value.id == name:
            return False
    for node in func.nodes:
        if isinstance(node, ast.Delete) and node.lineno > line and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
    return False


def _slice_bounds(func: FuncInfo, node: ast.AST, depth: int = 0, seen: set | None = None) -> set:
    """(lower, upper) names of the slices that the data of NODE is cut with, following local assignments."""
    seen = set() if seen is None else seen
    bounds: set = set()
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Slice):
            lower = sub.lower.id if isinstance(sub.lower, ast.Name) else None
            upper = sub.upper.id if isinstance(sub.upper, ast.Name) else None
            bounds.add((lower, upper))
        elif isinstance(sub, ast.Name) and sub.id not in seen:
            names.add(sub.id)
    if depth >= 4 or not names:
        return bounds
    seen |= names
    for stmt in func.nodes:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in stmt.targets):
            bounds |= _slice_bounds(func, stmt.value, depth + 1, seen)
    return bounds


def _creates_grad_tensor(func: FuncInfo, name: str) -> bool:
    for node in func.nodes:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.keyword) and sub.arg == "requires_grad":
                    return True
                if isinstance(sub, ast.Attribute) and sub.attr == "requires_grad_":
                    return True
    return False


_UNKNOWN = object()


def _constant_params(func: FuncInfo, call: ast.Call, offset: int) -> dict[str, object]:
    """Parameters of FUNC whose value at CALL is a literal: passed as a constant, or left at a constant default."""
    node = func.node
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return {}
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults = dict(zip([a.arg for a in positional][len(positional) - len(args.defaults):], args.defaults))
    defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    passed: dict[str, ast.AST] = {}
    for i, arg in enumerate(call.args):
        if i + offset < len(positional):
            passed[positional[i + offset].arg] = arg
    passed.update({k.arg: k.value for k in call.keywords if k.arg})
    rebound = {n.id for n in func.nodes if type(n) is ast.Name and not isinstance(n.ctx, ast.Load)}
    out: dict[str, object] = {}
    for name in func.params:
        if name in rebound:
            continue  # `if mode is None: mode = "train_first"`: the value at the test is not the argument
        expr = passed.get(name, defaults.get(name))
        if isinstance(expr, ast.Constant):
            out[name] = expr.value
    return out


def _evaluate(test: ast.AST, values: dict[str, object]) -> bool | None:
    """The truth of a small test over known parameter values (==, !=, in, is, not, and, or), else None."""
    value = _value(test, values)
    return None if value is _UNKNOWN else bool(value)


def _value(node: ast.AST, values: dict[str, object]) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id, _UNKNOWN)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _value(node.operand, values)
        return _UNKNOWN if inner is _UNKNOWN else not inner
    if isinstance(node, ast.BoolOp):
        parts = [_value(v, values) for v in node.values]
        decisive = (lambda v: not v) if isinstance(node.op, ast.And) else bool
        if any(p is not _UNKNOWN and decisive(p) for p in parts):
            return isinstance(node.op, ast.Or)
        return _UNKNOWN if any(p is _UNKNOWN for p in parts) else parts[-1]
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _value(node.left, values), _value(node.comparators[0], values)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        op = node.ops[0]
        try:
            if isinstance(op, (ast.Eq, ast.Is)):
                return left == right
            if isinstance(op, (ast.NotEq, ast.IsNot)):
                return left != right
            if isinstance(op, ast.In):
                return left in right  # type: ignore[operator]
            if isinstance(op, ast.NotIn):
                return left not in right  # type: ignore[operator]
        except TypeError:
            return _UNKNOWN
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_value(e, values) for e in node.elts]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else tuple(items)
    return _UNKNOWN

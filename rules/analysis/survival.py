"""Whether an update on validation data still holds when a later pass scores (read by RESCORE-S1).

An update changes what its optimizer (or an in-place loop over parameters) trains: its *owners*, the receivers of
`.parameters()` in the optimizer's construction. It is undone before the later pass when every owner is
* **discarded**: built below the function holding both passes (a script class keeping no model handed to it, a
  `torch.nn` module, a deep copy) and never leaving that function: not returned, stored outside, kept by a script
  function it is passed to, nor its parameters written into another object; or
* **restored**: after the update, on every path (and before the later pass), a full copy of its state taken before
  the update is put back. A copy taken after the update, no copy at all (live `state_dict()` tensors), or a copy or
  restore of only some parameters does not count.
Anything not shown undone survives. Names are never evidence: owners come from the optimizer's construction,
snapshots from their data flow out of the owner.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rules.analysis.graph import LOOP_TYPES, FuncInfo, ancestors
from rules.analysis.passes import may_leave

_PARAMS = {"parameters", "named_parameters"}
_STATE = _PARAMS | {"state_dict"}
_COPIES = {"clone", "deepcopy", "copy", "cpu"}  # make new tensors (models run on the GPU, so `.cpu()` copies)
_SELF_RETURNING = {"to", "cuda", "float", "bfloat16", "half", "train", "eval", "requires_grad_"}
_MODULE_USES = _STATE | {"load_state_dict", "train", "eval", "modules"}
_STORES = {"append", "extend", "insert", "add", "update", "setdefault", "add_module", "register_module", "put",
           "__setitem__", "register_buffer", "register_parameter"}
_WRITES = {"copy_", "add_", "sub_", "mul_", "div_", "lerp_", "addcmul_", "addcdiv_", "set_", "load_state_dict"}
_KEEPERS = {"deepcopy", "copy", "setattr", "list", "tuple", "dict"}
_CONTAINERS = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "list", "tuple"}
_MAX_DEPTH = 4

Frames = list[tuple[FuncInfo, ast.AST]]


@dataclass(frozen=True)
class Undone:
    """Why an update does not reach the later pass: the line that undoes it, and how."""

    line: int
    how: str


def undone_before(facts, site, frames: Frames, later: ast.AST) -> Undone | None:
    """How SITE's update (a causality AdaptSite) is undone before LATER, or None. FRAMES: (function, node) from the
    function holding both passes (the first pass's node) down to the update's function (the update)."""
    owners = _owners(facts, frames, site.step.anchor if site.step is not None else None)
    found = [_owner_undone(facts, k, owner, frames, later) for k, owner in owners]
    return found[0] if found and all(found) else None


def _owner_undone(facts, k: int, owner: ast.AST, frames: Frames, later: ast.AST) -> Undone | None:
    """OWNER, an expression of frame K, discarded below the first frame or restored in some frame."""
    func = frames[k][0]
    if k and isinstance(owner, ast.Name) and _fresh(facts, func, owner.id) and not _escapes(facts, func, owner.id, 0):
        line = min((n.lineno for n in func.nodes if type(n) is ast.Name and n.id == owner.id), default=func.line)
        return Undone(line, f"the adapted `{owner.id}` is built in `{func.name}` and discarded when it returns")
    seen: dict[int, ast.AST | None] = {k: owner}
    for j in range(k - 1, -1, -1):
        seen[j] = _arg_for(facts, frames[j][1], frames[j + 1][0], seen[j + 1]) if seen[j + 1] is not None else None
    for j in range(k + 1, len(frames)):
        seen[j] = _in_callee(facts, frames[j - 1][1], frames[j][0], seen[j - 1]) if seen[j - 1] is not None else None
    for j in range(len(frames) - 1, -1, -1):
        expr = seen[j]
        undone = _restore_after(facts, frames[j][0], frames[j][1], expr, later if j == 0 else None) if expr else None
        if undone is not None:
            return undone
    return None


# ---- owners: what an update trains ---------------------------------------------------------------------------
def _owners(facts, frames: Frames, node: ast.AST | None) -> list[tuple[int, ast.AST]]:
    """What the update at NODE (an optimizer step, an in-place parameter write) trains, each with the index of the
    frame whose expression it is (an optimizer handed down is followed to where it is built); empty when unknown."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return []
    k, func, receiver, owners = len(frames) - 1, frames[-1][0], node.func.value, []
    if node.func.attr == "step" and isinstance(receiver, ast.Name):
        expr: ast.AST | None = receiver
        while k and isinstance(expr, ast.Name) and expr.id in func.params:
            expr = _arg_for(facts, frames[k - 1][1], func, expr)
            k, func = k - 1, frames[k - 1][0]
        for value in [expr] if isinstance(expr, ast.Call) else _values(func, expr.id, set()) \
                if isinstance(expr, ast.Name) else []:
            args = getattr(value, "args", [])
            found = _param_receivers(value) if isinstance(value, ast.Call) else []
            found = found or [o for a in args if isinstance(a, ast.Name) for v in _values(func, a.id, set())
                              for o in _param_receivers(v)]  # `Adam(params)`, `params = [... model.parameters()]`
            found = found or [a for a in args if _module_like(func, a)]  # an optimizer wrapper built on the model
            if not found:
                return []
            owners.extend(found)
    else:
        root = receiver.value if isinstance(receiver, ast.Attribute) and receiver.attr == "data" else receiver
        loops = [n for n in func.nodes if isinstance(n, (ast.For, ast.comprehension)) and isinstance(root, ast.Name)
                 and any(type(t) is ast.Name and t.id == root.id for t in ast.walk(n.target))]
        owners = _param_receivers(loops[0].iter) if loops else []
    return [(k, o) for o in {ast.unparse(o): o for o in owners}.values()]


def _param_receivers(expr: ast.AST) -> list[ast.AST]:
    return [n.func.value for n in ast.walk(expr) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in _PARAMS and isinstance(n.func.value, (ast.Name, ast.Attribute))]


def _values(func: FuncInfo, name: str, seen: set) -> list[ast.AST]:
    """What NAME may hold in FUNC (or the function around it binding it): assigned values, aliases followed; a
    parameter is its bare Name, a loop or `with` variable the Name `?`."""
    if (id(func), name) in seen or len(seen) > 16:
        return []
    seen.add((id(func), name))
    scope: FuncInfo | None = func
    while scope is not None and not _binds(scope, name):
        scope = scope.parent
    if scope is None or name in scope.params:
        return [ast.Name(id=name, ctx=ast.Load())]
    out: list[ast.AST] = []
    for node in scope.nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            picked = [v for t in getattr(node, "targets", None) or [node.target] for v in _pick(t, node.value, name)]
        elif isinstance(node, (ast.For, ast.comprehension, ast.AugAssign, ast.withitem)):
            target = node.optional_vars if isinstance(node, ast.withitem) else node.target
            picked = [ast.Name(id="?", ctx=ast.Load())] if target is not None and _binds_name(target, name) else []
        else:
            continue
        for value in map(_strip, picked):
            out.extend(_values(scope, value.id, seen) if isinstance(value, ast.Name) and value.id != "?" else [value])
    return out


def _binds_name(target: ast.AST, name: str) -> bool:
    return any(type(t) is ast.Name and t.id == name for t in ast.walk(target))


def _binds(func: FuncInfo, name: str) -> bool:
    return name in func.params or any(type(n) is ast.Name and n.id == name and isinstance(n.ctx, ast.Store)
                                      for n in func.nodes)


def _pick(target: ast.AST, value: ast.AST, name: str) -> list[ast.AST]:
    if isinstance(target, ast.Name):
        return [value] if target.id == name else []
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(value.elts) == len(target.elts):
        return [v for t, e in zip(target.elts, value.elts) for v in _pick(t, e, name)]
    return [ast.Name(id="?", ctx=ast.Load())] if _binds_name(target, name) else []


def _strip(value: ast.AST) -> ast.AST:
    """`Module(...).to(device).train()` holds the object the constructor built."""
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _SELF_RETURNING:
        value = value.func.value
    return value


def _module_like(func: FuncInfo, expr: ast.AST) -> bool:
    """EXPR is used as a model in FUNC or a function around it: its parameters or state are read, or it is called."""
    if not isinstance(expr, (ast.Name, ast.Attribute)):
        return False
    text, scope = ast.unparse(expr), func
    while scope is not None:
        if any(isinstance(n, ast.Call) and ast.unparse(n.func.value if isinstance(n.func, ast.Attribute)
                                                      and n.func.attr in _MODULE_USES else n.func) == text
               for n in scope.nodes):
            return True
        scope = scope.parent
    return False


# ---- fresh objects that never leave their function ----------------------------------------------------------
def _fresh(facts, func: FuncInfo, name: str) -> bool:
    """Every value NAME holds in FUNC is an object FUNC builds (not a parameter, not a closure variable)."""
    if name in func.params or not _binds(func, name):
        return False
    values = _values(func, name, set())
    return bool(values) and all(_constructs(facts, func, v) for v in values)


def _constructs(facts, func: FuncInfo, value: ast.AST) -> bool:
    """VALUE builds a new object: a deep copy, a `torch.nn` module, a script class keeping no model handed to it."""
    if not isinstance(value, ast.Call):
        return False
    dotted = _qualified(facts, value.func)
    if dotted == "copy.deepcopy" or dotted.startswith("torch.nn."):
        return True
    init = _init_of(facts, dotted) if isinstance(value.func, ast.Name) else None
    if init is None:
        return False
    kept, params = _kept_params(init), init.params[1:]
    passed = [(params[i], a) for i, a in enumerate(value.args) if i < len(params)]
    passed += [(k.arg, k.value) for k in value.keywords]
    return not any(p in kept and _module_like(func, a) for p, a in passed)


def _qualified(facts, expr: ast.AST) -> str:
    """EXPR's dotted name read through the imports (`tnn.Linear` after `from torch import nn as tnn`)."""
    head, dot, rest = ast.unparse(expr).partition(".")
    for node in facts.graph.of_type(ast.Import, ast.ImportFrom):
        for a in node.names:
            if isinstance(node, ast.Import) and (a.asname or a.name.split(".")[0]) == head:
                return (a.name if a.asname else head) + dot + rest
            if isinstance(node, ast.ImportFrom) and node.module and not node.level and (a.asname or a.name) == head:
                return f"{node.module}.{a.name}" + dot + rest
    return head + dot + rest


def _init_of(facts, class_name: str) -> FuncInfo | None:
    """The `__init__` of a script class; None for no script class or a constructor inherited from one."""
    classes = [n for n in facts.graph.of_type(ast.ClassDef) if n.name == class_name]
    init = next((s for s in classes[0].body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None) \
        if len(classes) == 1 else None
    if init is not None:
        return facts.graph.func_of_node.get(init)
    script = {n.name for n in facts.graph.of_type(ast.ClassDef)}
    if len(classes) != 1 or any(isinstance(b, ast.Name) and b.id in script for b in classes[0].bases):
        return None
    return FuncInfo(classes[0], class_name, class_name, ["self"], None)


def _kept_params(init: FuncInfo) -> set[str]:
    """Constructor parameters kept on the instance as they are (or a part of them): a kept model's parameters."""
    rooted = {p: p for p in init.params[1:]}  # a name holding a parameter or a part of it -> that parameter
    for node in init.nodes:
        if isinstance(node, ast.For) and _root(node.iter, False) in rooted:
            rooted.update({t.id: rooted[_root(node.iter, False)] for t in ast.walk(node.target)
                           if type(t) is ast.Name})
    kept: set[str] = set()
    for node in init.nodes:
        values: list[ast.AST] = []
        if isinstance(node, ast.Assign) and any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            values = [node.value]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] in _STORES | {"setattr"}:
            values = list(node.args)
        todo = list(values)
        while todo:  # the value, and the elements of lists and module containers built around it
            part = todo.pop()
            if _root(part, False) in rooted:  # the parameter as it is, or an attribute of it
                kept.add(rooted[_root(part, False)])  # type: ignore[index]
            if isinstance(part, (ast.List, ast.Tuple)):
                todo.extend(part.elts)
            elif isinstance(part, ast.Call) and ast.unparse(part.func).split(".")[-1] in _CONTAINERS:
                todo.extend(part.args)
    return kept


def _escapes(facts, func: FuncInfo, name: str, depth: int) -> bool:
    """NAME's object or its parameters may outlive FUNC (returned, stored outside, kept, written elsewhere)."""
    state = _state_names(func, name)
    for node in func.nodes:
        if isinstance(node, (ast.Global, ast.Nonlocal)) and state & set(node.names):
            return True
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None \
                and _holds(node.value, state):
            return True
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) not in state for t in targets) \
                    and _holds(node.value, state, reads=True):
                return True
        if isinstance(node, ast.Call) and _call_keeps(facts, func, node, state, depth):
            return True
    return False


def _state_names(func: FuncInfo, name: str) -> set[str]:
    """NAME, its aliases and names bound from its attributes or parameters (a zip pairs targets and arguments)."""
    names, changed = {name}, True
    while changed:
        changed = False
        for node in func.nodes:
            pairs = [p for t in node.targets for p in _paired(t, node.value)] if isinstance(node, ast.Assign) \
                else _paired(node.target, node.iter) if isinstance(node, (ast.For, ast.comprehension)) else []
            for target, value in pairs:
                new = {t.id for t in ast.walk(target) if type(t) is ast.Name and isinstance(t.ctx, ast.Store)} - names
                if new and _holds(value, names, reads=True):
                    names |= new
                    changed = True
    return names


def _paired(target: ast.AST, value: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    if isinstance(target, (ast.Tuple, ast.List)):
        elts = value.args if _is_zip(value) else value.elts if isinstance(value, (ast.Tuple, ast.List)) else None
        if elts is not None and len(elts) == len(target.elts) and not any(isinstance(e, ast.Starred) for e in elts):
            return [p for t, v in zip(target.elts, elts) for p in _paired(t, v)]
    return [(target, value)]


def _is_zip(expr: ast.AST | None) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "zip" \
        and all(k.arg == "strict" for k in expr.keywords)


def _holds(expr: ast.AST, names: set[str], reads: bool = False) -> bool:
    """EXPR carries one of NAMES (with READS also their attributes), not a value computed by calling it:
    `model(x, adapter=lora)` gives activations, not the adapter."""
    parents = {id(c): n for n in ast.walk(expr) for c in ast.iter_child_nodes(n)}
    for node in ast.walk(expr):
        if type(node) is not ast.Name or node.id not in names:
            continue
        parent = parents.get(id(node))
        if isinstance(parent, ast.keyword):
            parent = parents.get(id(parent))
        if isinstance(parent, ast.Call) and (parent.func is node or ast.unparse(parent.func).split(".")[-1]
                                             not in _KEEPERS):
            continue
        if isinstance(parent, ast.Attribute) and not reads:
            call = parents.get(id(parent))
            if isinstance(call, ast.Call) and call.func is parent and parent.attr not in _STATE:
                continue  # `lora.reset()`: a method called, not the state taken
        return True
    return False


def _root(expr: ast.AST | None, subscripts: bool = True) -> str | None:
    """The name EXPR is an attribute (or with SUBSCRIPTS an element) of."""
    while isinstance(expr, (ast.Attribute, ast.Subscript) if subscripts else ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _call_keeps(facts, func: FuncInfo, call: ast.Call, state: set[str], depth: int) -> bool:
    """CALL stores the object outside, writes its parameters into another object, or passes it on to escape."""
    attr = call.func.attr if isinstance(call.func, ast.Attribute) else None
    receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
    args = [*call.args, *(k.value for k in call.keywords)]
    direct = [a for a in args if isinstance(a, ast.Name) and a.id in state]
    if direct and (attr in _STORES and _root(receiver) not in state or ast.unparse(call.func) == "setattr"):
        return True
    if attr in _WRITES and _root(receiver) not in state and any(_holds(a, state, reads=True) for a in args):
        return True  # the adapted parameters written into another object (a merge)
    resolved = facts.graph.resolved.get(call)
    if resolved is None or not direct:
        return False
    callee, offset = resolved
    if depth >= _MAX_DEPTH or callee is func:
        return True
    passed = list(zip(callee.params[offset:], call.args)) + [(k.arg, k.value) for k in call.keywords]
    return any(p in callee.params and a in direct and _escapes(facts, callee, p, depth + 1) for p, a in passed)


# ---- restores of a snapshot taken before the update ---------------------------------------------------------
def _restore_after(facts, func: FuncInfo, node: ast.AST, owner: ast.AST, later: ast.AST | None) -> Undone | None:
    """A statement of FUNC on every path after NODE (before LATER) restoring OWNER from a copy made before NODE."""
    parents, text = facts.graph.parents, ast.unparse(owner)
    later_chain = {id(n) for n in ancestors(parents, later)}
    child, parent = node, parents.get(node)
    while parent is not None:
        for name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(parent, name, None)
            if not isinstance(block, list) or not any(s is child for s in block):
                continue
            after = block[next(i for i, s in enumerate(block) if s is child) + 1:]
            if isinstance(parent, ast.Try) and name != "finalbody":
                after = after + parent.finalbody
            for stmt in after:
                if id(stmt) in later_chain:
                    break
                snapshot = _restores(stmt, text)
                if snapshot is not None and _taken_before(facts, func, snapshot, node, stmt):
                    return Undone(stmt.lineno, f"`{text}` is restored from `{snapshot}`, copied before the update")
                if may_leave(stmt):
                    return None
        if parent is func.node or id(parent) in later_chain:
            return None
        child, parent = parent, parents.get(parent)
    return None


def _restores(stmt: ast.AST, owner: str) -> str | None:
    """The snapshot STMT restores every parameter of OWNER from: `owner.load_state_dict(snap)`, `for name, p in
    owner.named_parameters(): p.data.copy_(snap[name])` (guarded at most by `name in snap`), `for p, s in
    zip(owner.parameters(), snap): p.copy_(s)`; else None."""
    if isinstance(stmt, ast.With):
        return next((s for s in (_restores(b, owner) for b in stmt.body) if s), None)
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "load_state_dict" \
            and ast.unparse(call.func.value) == owner and call.args and isinstance(call.args[0], ast.Name):
        return call.args[0].id
    target, source = getattr(stmt, "target", None), getattr(stmt, "iter", None)
    if not isinstance(stmt, ast.For) or stmt.orelse or not isinstance(target, ast.Tuple) or len(target.elts) != 2 \
            or not all(isinstance(t, ast.Name) for t in target.elts):
        return None
    first, second = (t.id for t in target.elts)  # type: ignore[attr-defined]
    if _is_zip(source) and len(source.args) == 2:
        own = 0 if _state_source(source.args[0], owner) else 1 if _state_source(source.args[1], owner) else None
        snap = source.args[1 - own] if own is not None else None
        if not isinstance(snap, ast.Name):
            return None
        param, copied = (first, second) if own == 0 else (second, first)
        return snap.id if _copies_back(stmt.body, param, lambda e: _is_name(e, copied), snap.id, None) else None
    snapshot = next((n.value.id for n in ast.walk(stmt) if isinstance(n, ast.Subscript)
                     and isinstance(n.value, ast.Name) and _is_name(n.slice, first)), None)
    if snapshot is None or not _state_source(source, owner):
        return None
    element = lambda e: isinstance(e, ast.Subscript) and _is_name(e.value, snapshot) and _is_name(e.slice, first)
    return snapshot if _copies_back(stmt.body, second, element, snapshot, first) else None


def _state_source(expr: ast.AST, owner: str | None) -> bool:
    """`owner.parameters()`, `owner.named_parameters()`, `owner.state_dict().items()` (any owner when None)."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "items":
        expr = expr.func.value
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in _STATE \
        and (owner is None or ast.unparse(expr.func.value) == owner)


def _copies_back(body: list[ast.stmt], param: str, is_source, snapshot: str, key: str | None) -> bool:
    """BODY copies the snapshot's element into PARAM unconditionally (or only under `key in snapshot`)."""
    for stmt in body:
        while isinstance(stmt, ast.With) and len(stmt.body) == 1:
            stmt = stmt.body[0]
        test = stmt.test if isinstance(stmt, ast.If) and not stmt.orelse else None
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In) \
                and _is_name(test.left, key) and _is_name(test.comparators[0], snapshot) \
                and _copies_back(stmt.body, param, is_source, snapshot, key):  # type: ignore[union-attr]
            return True
        call = stmt.value if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) else None
        if call is not None and isinstance(call.func, ast.Attribute) and call.func.attr == "copy_" and call.args:
            target, source = call.func.value, call.args[0]
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute):
            target, source = stmt.targets[0], stmt.value
        else:
            continue
        if isinstance(target, ast.Attribute) and target.attr == "data":
            target = target.value
        while isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute):
            source = source.func.value  # `snap[n].to(p.device)`
        if _is_name(target, param) and is_source(source):
            return True
    return False


def _is_name(expr: ast.AST | None, name: str | None) -> bool:
    return isinstance(expr, ast.Name) and expr.id == name


def _taken_before(facts, func: FuncInfo, snapshot: str, update: ast.AST, restore: ast.AST) -> bool:
    """SNAPSHOT only holds full copies made before UPDATE (in a loop around UPDATE only if RESTORE is in it too)."""
    defs = [n for n in func.nodes if isinstance(n, ast.Assign) and any(_is_name(t, snapshot) for t in n.targets)]
    if not defs or any(isinstance(v, ast.Name) and v.id == "?" for v in _values(func, snapshot, set())):
        return False  # also bound by a loop, a with or an augmented update
    loops = {n: {id(p) for p in ancestors(facts.graph.parents, n) if isinstance(p, LOOP_TYPES)}
             for n in (update, restore, *defs)}
    return all((d.lineno, d.col_offset) < (update.lineno, update.col_offset) and _full_copy(d.value)
               and not (loops[d] & loops[update]) - loops[restore] for d in defs)


def _full_copy(value: ast.AST) -> bool:
    """A copy of every parameter: `deepcopy(m.state_dict())`, or an unfiltered comprehension over
    `m.state_dict().items()` / `m.named_parameters()` / `m.parameters()` that copies each tensor."""
    if isinstance(value, ast.Call) and ast.unparse(value.func).split(".")[-1] == "deepcopy" and value.args:
        return _state_source(value.args[0], None) or isinstance(value.args[0], (ast.DictComp, ast.ListComp))
    if isinstance(value, (ast.DictComp, ast.ListComp)) and len(value.generators) == 1:
        gen = value.generators[0]
        element = value.value if isinstance(value, ast.DictComp) else value.elt
        return not gen.ifs and _state_source(gen.iter, None) and any(
            isinstance(n, ast.Call) and ast.unparse(n.func).split(".")[-1] in _COPIES for n in ast.walk(element))
    return False


# ---- one object seen from the caller and from the callee ------------------------------------------------------
def _arg_for(facts, call: ast.AST, callee: FuncInfo, expr: ast.AST | None) -> ast.AST | None:
    """EXPR (of CALLEE, rooted at a parameter or a closure variable) as the caller writes it at CALL, or None."""
    root = expr
    while isinstance(root, ast.Attribute):
        root = root.value
    if not isinstance(root, ast.Name):
        return None
    if root.id not in callee.params:
        return None if _binds(callee, root.id) else expr  # a closure variable or a global: the same name outside
    resolved = facts.graph.resolved.get(call) if isinstance(call, ast.Call) else None
    if resolved is None or resolved[0] is not callee:
        return None
    index = callee.params.index(root.id) - resolved[1]
    if index < 0 and isinstance(call.func, ast.Attribute):  # type: ignore[union-attr]
        arg: ast.AST | None = call.func.value  # type: ignore[union-attr]
    elif 0 <= index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
        arg = call.args[index]  # type: ignore[union-attr]
    else:
        arg = next((k.value for k in call.keywords if k.arg == root.id), None)  # type: ignore[union-attr]
    if expr is root or not isinstance(arg, (ast.Name, ast.Attribute)):
        return arg
    return ast.parse(ast.unparse(arg) + ast.unparse(expr)[len(root.id):], mode="eval").body


def _in_callee(facts, call: ast.AST, callee: FuncInfo, expr: ast.AST) -> ast.AST | None:
    """EXPR (of the caller) as CALLEE sees it: the parameter CALL passes it in, or the same closure variable."""
    resolved = facts.graph.resolved.get(call) if isinstance(call, ast.Call) else None
    if resolved is None or resolved[0] is not callee:
        return None
    text = ast.unparse(expr)
    for param in callee.params:
        arg = _arg_for(facts, call, callee, ast.Name(id=param, ctx=ast.Load()))
        if arg is not None and text.startswith(ast.unparse(arg)) and text[len(ast.unparse(arg)):][:1] in ("", "."):
            return ast.parse(param + text[len(ast.unparse(arg)):], mode="eval").body
    root = _root(expr, False)
    return expr if root is not None and not _binds(callee, root) else None

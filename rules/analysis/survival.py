"""Whether an update on validation data still holds when a later pass scores (read by RESCORE-S1).

An update changes what its optimizer (or an in-place loop over parameters) trains: its *owners*, the receivers of
`.parameters()` in the optimizer's construction. It is undone before the later pass when every owner is
* **discarded**: built below the function holding both passes (a script class keeping no model handed to it, a
  `torch.nn` module, a deep copy) and never leaving that function: not returned, stored outside, kept by a script
  function it is passed to, nor its parameters written into another object; or
* **restored**: after the update, on every path (and before the later pass), a full copy of its state taken before
  the update is put back. A copy taken after the update, no copy at all (live `state_dict()` tensors), or a copy or
  restore of only some parameters does not count; or
* **not scored**: the owner is an object the function holding both passes builds itself (a model deserialized into
  a fresh instance for adaptation), it never leaves that function, and nothing the later pass is handed (its
  arguments, receivers, callees, and whatever those were built from) mentions it: the later pass scores another
  model. A callee nested in that function (which could read the owner from its closure) or a saved state does not
  count.
Anything not shown undone survives. Names are never evidence: owners come from the optimizer's construction,
snapshots from their data flow out of the owner.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rules.analysis.graph import LOOP_TYPES, FuncInfo, ancestors
from rules.analysis.holding import (
    PARAMS,
    STATE,
    binds,
    escapes,
    fresh,
    holds,
    is_zip,
    module_like,
    qualified,
    root_name,
    state_names,
    values_of,
)
from rules.analysis.passes import may_leave

_COPIES = {"clone", "deepcopy", "copy", "cpu"}  # make new tensors (models run on the GPU, so `.cpu()` copies)

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


def pass_undone(facts, func: FuncInfo, first, later, sites: dict) -> list[Undone]:
    """How every update of FIRST (a pass of FUNC) is undone before LATER; empty when one of them may survive. SITES:
    the causality AdaptSites by their backward node."""
    found = []
    for event in first.adapt_events:
        site = sites.get(event.node)
        if site is None or site.step is None:
            return []
        frames = [(func, event.chain[0] if event.chain else site.step.anchor)]
        frames += [(facts.function_of(call), call) for call in event.chain[1:]]
        if event.chain:
            frames.append((site.home, site.step.anchor))
        undone = undone_before(facts, site, frames, later.anchor)
        if undone is None:
            return []
        found.append(undone)
    return found


def _owner_undone(facts, k: int, owner: ast.AST, frames: Frames, later: ast.AST) -> Undone | None:
    """OWNER, an expression of frame K, discarded below the first frame or restored in some frame."""
    func = frames[k][0]
    if k and isinstance(owner, ast.Name) and fresh(facts, func, owner.id) and not escapes(facts, func, owner.id, 0):
        line = min((n.lineno for n in func.nodes if type(n) is ast.Name and n.id == owner.id), default=func.line)
        return Undone(line, f"the adapted `{owner.id}` is built in `{func.name}` and discarded when it returns")
    seen: dict[int, ast.AST | None] = {k: owner}
    for j in range(k - 1, -1, -1):
        seen[j] = _arg_for(facts, frames[j][1], frames[j + 1][0], seen[j + 1]) if seen[j + 1] is not None else None
    for j in range(k + 1, len(frames)):
        seen[j] = _in_callee(facts, frames[j - 1][1], frames[j][0], seen[j - 1]) if seen[j - 1] is not None else None
    if seen[0] is not None and (undone := _scores_another(facts, frames[0][0], seen[0], later)) is not None:
        return undone
    for j in range(len(frames) - 1, -1, -1):
        expr = seen[j]
        undone = _restore_after(facts, frames[j][0], frames[j][1], expr, later if j == 0 else None) if expr else None
        if undone is not None:
            return undone
    return None


# ---- a later pass handed another model ----------------------------------------------------------------------
_SAVES = {"torch.save", "safetensors.torch.save_file", "save_file", "save_model"}
_MAX_MENTION = 64


def _scores_another(facts, func: FuncInfo, owner: ast.AST, later: ast.AST) -> Undone | None:
    """LATER (a statement of FUNC) is handed nothing that may hold OWNER, a fresh object of FUNC that stays there."""
    if not isinstance(owner, ast.Name) or not isinstance(func.node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
            or not fresh(facts, func, owner.id) or escapes(facts, func, owner.id, 0):
        return None
    state = state_names(func, owner.id)
    for call in (n for n in func.nodes if isinstance(n, ast.Call)):
        if qualified(facts, call.func) in _SAVES and any(holds(a, state, reads=True) for a in call.args):
            return None  # the adapted state written to a file, which the later model may load
    calls = [n for n in ast.walk(later) if isinstance(n, ast.Call)]
    for call in calls:
        resolved = facts.graph.resolved.get(call)
        scope = resolved[0] if resolved is not None else None
        while scope is not None:
            if scope is func:
                return None  # a closure of FUNC: it may read OWNER without being handed it
            scope = scope.parent
    seen: set[str] = set()
    todo = [n.id for n in ast.walk(later) if type(n) is ast.Name]
    while todo:
        name = todo.pop()
        if name in state:
            return None
        if name in seen or name == "?":
            continue
        seen.add(name)
        if len(seen) > _MAX_MENTION:
            return None
        todo += [n.id for v in values_of(func, name, set()) for n in ast.walk(v) if type(n) is ast.Name]
    built = min((n.lineno for n in func.nodes if type(n) is ast.Name and n.id == owner.id), default=func.line)
    return Undone(built, f"the adapted `{owner.id}` (line {built}) is a model of its own: the pass at line "
                         f"{later.lineno} is handed nothing that holds it")


# ---- owners: what an update trains ---------------------------------------------------------------------------
def _owners(facts, frames: Frames, node: ast.AST | None) -> list[tuple[int, ast.AST]]:
    """What the update at NODE (an optimizer step, an in-place parameter write) trains, each with the index of the
    frame whose expression it is (an optimizer handed down is followed to where it is built); empty when unknown."""
    if isinstance(node, (ast.AugAssign, ast.Assign)):  # `w.data -= lr * w.grad`
        target = node.target if isinstance(node, ast.AugAssign) else node.targets[0]
        receiver, attr = (target.value, target.attr) if isinstance(target, ast.Attribute) else (target, "")
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        receiver, attr = node.func.value, node.func.attr
    else:
        return []
    k, func, owners = len(frames) - 1, frames[-1][0], []
    if isinstance(node, ast.Call) and attr == "step" and isinstance(receiver, ast.Name):
        expr: ast.AST | None = receiver
        while k and isinstance(expr, ast.Name) and expr.id in func.params:
            expr = _arg_for(facts, frames[k - 1][1], func, expr)
            k, func = k - 1, frames[k - 1][0]
        for value in [expr] if isinstance(expr, ast.Call) else values_of(func, expr.id, set()) \
                if isinstance(expr, ast.Name) else []:
            args = getattr(value, "args", [])
            found = _param_receivers(value) if isinstance(value, ast.Call) else []
            found = found or [o for a in args if isinstance(a, ast.Name) for v in values_of(func, a.id, set())
                              for o in _param_receivers(v)]  # `Adam(params)`, `params = [... model.parameters()]`
            found = found or _trained_by_helper(facts, value)  # `opt = build_optimizer(lora, args)`
            found = found or _returned_beside(facts, func, value)  # `lora, opt = build_adapter(rank)`
            found = found or [a for a in args if module_like(func, a)]  # an optimizer wrapper built on the model
            if not found:
                return []
            owners.extend(found)
    else:
        root = receiver.value if isinstance(receiver, ast.Attribute) and receiver.attr == "data" else receiver
        loops = [n for n in func.nodes if isinstance(n, (ast.For, ast.comprehension)) and isinstance(root, ast.Name)
                 and any(type(t) is ast.Name and t.id == root.id for t in ast.walk(n.target))]
        owners = _param_sources(func, loops[0].iter) if loops else []
    return [(k, o) for o in {ast.unparse(o): o for o in owners}.values()]


def _param_sources(func: FuncInfo, expr: ast.AST) -> list[ast.AST]:
    """What the parameters EXPR iterates over belong to: `model.parameters()`, or a name holding a list of them
    (`projs = [b.mlp.proj.weight for b in model.blocks]` belongs to `model`); empty when unknown."""
    found = _param_receivers(expr)
    if found or not isinstance(expr, ast.Name):
        return found
    for value in values_of(func, expr.id, set()):
        owners = _param_receivers(value)
        if not owners and isinstance(value, (ast.ListComp, ast.GeneratorExp)) and len(value.generators) == 1:
            owners = [r for r in [_attribute_root(value.generators[0].iter)] if r is not None]
        elif not owners and isinstance(value, (ast.List, ast.Tuple)) and value.elts:
            owners = [r for e in value.elts if (r := _attribute_root(e)) is not None]
            owners = owners if len(owners) == len(value.elts) else []
        if not owners:
            return []
        found.extend(owners)
    return found


def _attribute_root(expr: ast.AST) -> ast.Name | None:
    """The name an attribute chain `model.blocks[0].mlp.weight` starts from (None for a bare name or a call)."""
    if not isinstance(expr, (ast.Attribute, ast.Subscript)):
        return None
    while isinstance(expr, (ast.Attribute, ast.Subscript)):
        expr = expr.value
    return expr if isinstance(expr, ast.Name) else None


def _trained_by_helper(facts, value: ast.AST) -> list[ast.AST]:
    """The arguments of VALUE, a call of a script function, whose `.parameters()` that function reads (an optimizer
    built by a helper); empty when it reads none, or also the parameters of something it is not handed."""
    resolved = facts.graph.resolved.get(value) if isinstance(value, ast.Call) else None
    if resolved is None:
        return []
    callee, _ = resolved
    receivers = [r for node in callee.nodes if isinstance(node, ast.Call) for r in _param_receivers(node)]
    roots = {root_name(r, False) for r in receivers}
    if not receivers or not roots <= set(callee.params):
        return []
    return [a for p in sorted(roots) if (a := _arg_for(facts, value, callee, ast.Name(id=p, ctx=ast.Load())))]


def _returned_beside(facts, func: FuncInfo, value: ast.AST) -> list[ast.AST]:
    """VALUE, element I of what a script function returns into a tuple of names in FUNC (`lora, opt = build(r)`),
    is an optimizer over objects returned beside it: FUNC's names for them; empty when unknown."""
    if not (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Call)
            and isinstance(value.slice, ast.Constant) and type(value.slice.value) is int):
        return []
    call, index = value.value, value.slice.value
    resolved = facts.graph.resolved.get(call)
    assign = next((n for n in func.nodes if isinstance(n, ast.Assign) and n.value is call), None)
    if resolved is None or assign is None or len(assign.targets) != 1 \
            or not isinstance(assign.targets[0], (ast.Tuple, ast.List)):
        return []
    targets, callee, owners = assign.targets[0].elts, resolved[0], []
    results = [n.value for n in callee.nodes if isinstance(n, ast.Return)]
    for result in results:
        if not isinstance(result, (ast.Tuple, ast.List)) or len(result.elts) != len(targets):
            return []
        made = result.elts[index]
        exprs = [made] if isinstance(made, ast.Call) else values_of(callee, made.id, set()) \
            if isinstance(made, ast.Name) else []
        receivers = [r for e in exprs for r in _param_receivers(e)]
        if not receivers:
            return []
        for receiver in receivers:
            j = next((j for j, e in enumerate(result.elts) if _is_name(e, root_name(receiver, False))), None)
            if j is None or type(targets[j]) is not ast.Name:
                return []
            owners.append(targets[j])
    return owners


def _param_receivers(expr: ast.AST) -> list[ast.AST]:
    return [n.func.value for n in ast.walk(expr) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in PARAMS and isinstance(n.func.value, (ast.Name, ast.Attribute))]


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
    if is_zip(source) and len(source.args) == 2:
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
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in STATE \
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
    if not defs or any(isinstance(v, ast.Name) and v.id == "?" for v in values_of(func, snapshot, set())):
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
        return None if binds(callee, root.id) else expr  # a closure variable or a global: the same name outside
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
    root = root_name(expr, False)
    return expr if root is not None and not binds(callee, root) else None

"""What a name of a function may hold, and whether the object it holds may outlive that function (read by
rules.analysis.survival and rules.analysis.scored_model).

`values_of` follows assignments and aliases flow-insensitively; `fresh` says every value is an object the function
builds (a deep copy, a `torch.nn` module, a script class keeping no model handed to it); `escapes` says the object
or its parameters may leave the function (returned, stored outside, kept by a callee, written into another object).
"""

from __future__ import annotations

import ast

from rules.analysis.graph import FuncInfo

PARAMS = {"parameters", "named_parameters"}
STATE = PARAMS | {"state_dict"}
WRITES = {"copy_", "add_", "sub_", "mul_", "div_", "lerp_", "addcmul_", "addcdiv_", "set_", "load_state_dict"}
_SELF_RETURNING = {"to", "cuda", "float", "bfloat16", "half", "train", "eval", "requires_grad_"}
_MODULE_USES = STATE | {"load_state_dict", "train", "eval", "modules"}
_STORES = {"append", "extend", "insert", "add", "update", "setdefault", "add_module", "register_module", "put",
           "__setitem__", "register_buffer", "register_parameter"}
_KEEPERS = {"deepcopy", "copy", "setattr", "list", "tuple", "dict"}
_CONTAINERS = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "list", "tuple"}
_MAX_DEPTH = 4


def values_of(func: FuncInfo, name: str, seen: set) -> list[ast.AST]:
    """What NAME may hold in FUNC (or the function around it binding it): assigned values, aliases followed; a
    parameter is its bare Name, a loop or `with` variable the Name `?`."""
    if (id(func), name) in seen or len(seen) > 16:
        return []
    seen.add((id(func), name))
    scope: FuncInfo | None = func
    while scope is not None and not binds(scope, name):
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
            out.extend(values_of(scope, value.id, seen) if isinstance(value, ast.Name) and value.id != "?" else [value])
    return out


def _binds_name(target: ast.AST, name: str) -> bool:
    return any(type(t) is ast.Name and t.id == name for t in ast.walk(target))


def binds(func: FuncInfo, name: str) -> bool:
    return name in func.params or any(type(n) is ast.Name and n.id == name and isinstance(n.ctx, ast.Store)
                                      for n in func.nodes)


def _pick(target: ast.AST, value: ast.AST, name: str) -> list[ast.AST]:
    if isinstance(target, ast.Name):
        return [value] if target.id == name else []
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(value.elts) == len(target.elts):
        return [v for t, e in zip(target.elts, value.elts) for v in _pick(t, e, name)]
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, ast.Call) \
            and not any(isinstance(t, ast.Starred) for t in target.elts):  # `a, opt = build(4)`: element i of it
        return [ast.Subscript(value=value, slice=ast.Constant(i), ctx=ast.Load())
                for i, t in enumerate(target.elts) if type(t) is ast.Name and t.id == name] or \
            ([ast.Name(id="?", ctx=ast.Load())] if _binds_name(target, name) else [])
    return [ast.Name(id="?", ctx=ast.Load())] if _binds_name(target, name) else []


def _strip(value: ast.AST) -> ast.AST:
    """`Module(...).to(device).train()` holds the object the constructor built."""
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _SELF_RETURNING:
        value = value.func.value
    return value


def module_like(func: FuncInfo, expr: ast.AST) -> bool:
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
def fresh(facts, func: FuncInfo, name: str, depth: int = 0) -> bool:
    """Every value NAME holds in FUNC is an object FUNC builds (not a parameter, not a closure variable)."""
    if name in func.params or not binds(func, name):
        return False
    values = values_of(func, name, set())
    return bool(values) and all(_constructs(facts, func, v, depth) for v in values)


def _constructs(facts, func: FuncInfo, value: ast.AST, depth: int = 0) -> bool:
    """VALUE builds a new object: a deep copy, a `torch.nn` module, a script class keeping no model handed to it,
    or (element I of) what a script function returns when every return of it builds one that it keeps nowhere."""
    index = None
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant) and type(value.slice.value) is int:
        value, index = value.value, value.slice.value
    if not isinstance(value, ast.Call):
        return False
    dotted = qualified(facts, value.func)
    if index is None and (dotted == "copy.deepcopy" or dotted.startswith("torch.nn.")):
        return True
    resolved = facts.graph.resolved.get(value)
    if resolved is not None and resolved[0].name != "__init__":
        return depth < _MAX_DEPTH and _builds_result(facts, resolved[0], index, depth + 1)
    init = _init_of(facts, dotted) if isinstance(value.func, ast.Name) and index is None else None
    if init is None:
        return False
    kept, params = _kept_params(init), init.params[1:]
    passed = [(params[i], a) for i, a in enumerate(value.args) if i < len(params)]
    passed += [(k.arg, k.value) for k in value.keywords]
    return not any(p in kept and module_like(func, a) for p, a in passed)


def _builds_result(facts, callee: FuncInfo, index: int | None, depth: int) -> bool:
    """Every return of CALLEE gives (as element INDEX) an object CALLEE builds and keeps nowhere else."""
    results = [n.value for n in callee.nodes if isinstance(n, ast.Return)]
    if not results or any(r is None for r in results):
        return False
    for result in results:
        if index is not None:
            if not isinstance(result, (ast.Tuple, ast.List)) or len(result.elts) <= index \
                    or any(isinstance(e, ast.Starred) for e in result.elts):
                return False
            result = result.elts[index]
        result = _strip(result)
        if isinstance(result, ast.Name):
            if not fresh(facts, callee, result.id, depth) or escapes(facts, callee, result.id, depth, returned=False):
                return False
        elif not _constructs(facts, callee, result, depth):
            return False
    return True


def qualified(facts, expr: ast.AST) -> str:
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
        if isinstance(node, ast.For) and root_name(node.iter, False) in rooted:
            rooted.update({t.id: rooted[root_name(node.iter, False)] for t in ast.walk(node.target)
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
            if root_name(part, False) in rooted:  # the parameter as it is, or an attribute of it
                kept.add(rooted[root_name(part, False)])  # type: ignore[index]
            if isinstance(part, (ast.List, ast.Tuple)):
                todo.extend(part.elts)
            elif isinstance(part, ast.Call) and ast.unparse(part.func).split(".")[-1] in _CONTAINERS:
                todo.extend(part.args)
    return kept


def escapes(facts, func: FuncInfo, name: str, depth: int, returned: bool = True) -> bool:
    """NAME's object or its parameters may outlive FUNC (returned, stored outside, kept, written elsewhere); without
    RETURNED, a return of them does not count (the caller decides what becomes of the result)."""
    state = state_names(func, name)
    for node in func.nodes:
        if isinstance(node, (ast.Global, ast.Nonlocal)) and state & set(node.names):
            return True
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and node.value is not None and holds(node.value, state):
            return True
        if returned and returns(func, node, state):
            return True
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, (ast.Attribute, ast.Subscript)) and root_name(t) not in state for t in targets) \
                    and holds(node.value, state, reads=True):
                return True
        if isinstance(node, ast.Call) and _call_keeps(facts, func, node, state, depth):
            return True
    return False


def state_names(func: FuncInfo, name: str) -> set[str]:
    """NAME, its aliases and names bound from its attributes or parameters (a zip pairs targets and arguments)."""
    names, changed = {name}, True
    while changed:
        changed = False
        for node in func.nodes:
            pairs = [p for t in node.targets for p in _paired(t, node.value)] if isinstance(node, ast.Assign) \
                else _paired(node.target, node.iter) if isinstance(node, (ast.For, ast.comprehension)) else []
            for target, value in pairs:
                new = {t.id for t in ast.walk(target) if type(t) is ast.Name and isinstance(t.ctx, ast.Store)} - names
                if new and holds(value, names, reads=True):
                    names |= new
                    changed = True
    return names


def _paired(target: ast.AST, value: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    if isinstance(target, (ast.Tuple, ast.List)):
        elts = value.args if is_zip(value) else value.elts if isinstance(value, (ast.Tuple, ast.List)) else None
        if elts is not None and len(elts) == len(target.elts) and not any(isinstance(e, ast.Starred) for e in elts):
            return [p for t, v in zip(target.elts, elts) for p in _paired(t, v)]
    return [(target, value)]


def is_zip(expr: ast.AST | None) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "zip" \
        and all(k.arg == "strict" for k in expr.keywords)


def holds(expr: ast.AST, names: set[str], reads: bool = False) -> bool:
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
            if isinstance(call, ast.Call) and call.func is parent and parent.attr not in STATE:
                continue  # `lora.reset()`: a method called, not the state taken
        return True
    return False


def root_name(expr: ast.AST | None, subscripts: bool = True) -> str | None:
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
    if direct and (attr in _STORES and root_name(receiver) not in state or ast.unparse(call.func) == "setattr"):
        return True
    if attr in WRITES and root_name(receiver) not in state and any(holds(a, state, reads=True) for a in args):
        return True  # the adapted parameters written into another object (a merge)
    resolved = facts.graph.resolved.get(call)
    if resolved is None or not direct:
        return False
    callee, offset = resolved
    if depth >= _MAX_DEPTH or callee is func:
        return True
    passed = [(p, a) for p, a in [*zip(callee.params[offset:], call.args), *((k.arg, k.value) for k in call.keywords)]
              if p in callee.params and a in direct]
    if any(escapes(facts, callee, p, depth + 1, returned=False) for p, _ in passed):
        return True
    given_back = any(returns(callee, n, state_names(callee, p)) for p, _ in passed for n in callee.nodes)
    return given_back and not _result_stays(facts, func, call, depth)  # `opt = build_optimizer(model)`


def returns(func: FuncInfo, node: ast.AST, state: set[str]) -> bool:
    """NODE is a return of FUNC that gives back one of STATE or its parameters."""
    return isinstance(node, ast.Return) and node.value is not None and holds(node.value, state)


def _result_stays(facts, func: FuncInfo, call: ast.Call, depth: int) -> bool:
    """CALL is the whole value of an assignment in FUNC to plain names, none of which escapes FUNC."""
    for node in func.nodes:
        if isinstance(node, ast.Assign) and node.value is call:
            names = [t for target in node.targets for t in ast.walk(target)
                     if isinstance(t, (ast.Attribute, ast.Subscript, ast.Starred, ast.Name))]
            return all(type(t) is ast.Name for t in names) and depth < _MAX_DEPTH \
                and not any(escapes(facts, func, t.id, depth + 1) for t in names)
    return False

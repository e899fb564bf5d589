"""Which part of a value a read takes, for the validation-data taint (rules.analysis.taint).

* an attribute of a name only an import binds (`glob.glob`, `np.load`) is a library's member, never a script field
  of that name that may hold validation data;
* `NAME[KEY]` of a dict literal with constant keys reads only that key's values (a config dict that holds the
  training and the validation paths side by side);
* a dict handed to a script function that reads its parameter only by constant keys (`conf["dim"]`,
  `conf.get("lr", 0)`, or handing it on to another such function) carries only those keys' values into it.
Anything less sure (another shape, in-place changes, `global`, a parameter used whole) keeps the whole value.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from rules.analysis.graph import COMPREHENSION_TYPES, FuncInfo, Graph
from rules.analysis.reaching import ReachingDefinitions

# in-place methods whose receiver takes in the labels of their arguments (the taint's flows read this too)
MUTATORS = {"append", "extend", "insert", "update", "add", "put", "copy_", "add_", "index_copy_",
            "index_add_", "scatter_", "scatter_add_", "masked_scatter_", "set_", "push"}
_CHANGES_IN_PLACE = MUTATORS | {"setdefault", "pop", "popitem", "clear"}  # ... and those that remove entries


class KeyedReads:
    """Answers for one module; `chains` are the per-function reaching definitions the taint computed."""

    def __init__(self, graph: Graph, chains: dict[FuncInfo, ReachingDefinitions], local_names: dict,
                 constructor: Callable[[ast.Call, FuncInfo], FuncInfo | None]) -> None:
        self.graph = graph
        self.chains = chains
        self._local_names = local_names
        self._constructor = constructor
        self._mutated: dict[FuncInfo, set[str]] = {}
        self._keys_cache: dict[tuple[int, int], set | None] = {}
        self._imported, self._assigned = self._import_bindings()

    # ---- names bound by imports ------------------------------------------------------------------------------
    def _import_bindings(self) -> tuple[dict[FuncInfo, set[str]], dict[FuncInfo, set[str]]]:
        """Per scope: the names its import statements bind, and the names anything else binds there."""
        imported: dict[FuncInfo, set[str]] = {}
        assigned: dict[FuncInfo, set[str]] = {}
        for func in self.graph.functions:
            mine, other = imported.setdefault(func, set()), assigned.setdefault(func, set(func.params))
            for node in func.nodes:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mine.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
                elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    other.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    other.add(node.name)
        return imported, assigned

    def is_module(self, node: ast.AST, scope: FuncInfo) -> bool:
        """True when NODE is a name that only an import binds where it is read (`glob` in `glob.glob(...)`): an
        attribute of it is a module's member, never a field that script code stored data in."""
        if type(node) is not ast.Name or node in self._local_names:
            return False
        for chain in enclosing_chain(scope):
            if node.id in self._assigned.get(chain, ()):
                return False
            if node.id in self._imported.get(chain, ()):
                return True
        return False

    # ---- dict literals read by constant keys ------------------------------------------------------------------
    def dict_items(self, node: ast.Subscript, scope: FuncInfo) -> list[ast.AST] | None:
        """The values `NAME[KEY]` reads when KEY is a constant and NAME a dict literal (`dict_values`)."""
        if type(node.slice) is not ast.Constant:
            return None
        return self.dict_values(node.value, scope, {node.slice.value}, every_key=True)

    def dict_values(self, name: ast.AST, scope: FuncInfo, keys: set, every_key: bool = False) -> list[ast.AST] | None:
        """The values under KEYS of the dict NAME holds, when every definition of NAME reaching this read is
        `NAME = {...}` with constant keys and no `**` (a config dict holding the training and the validation paths
        side by side); None when that is not sure: another shape, a key a definition lacks (with EVERY_KEY), or
        NAME changed in place (`NAME[k] = v`, `NAME.update(...)`, `del`) anywhere in its scope."""
        if type(name) is not ast.Name:
            return None
        chains = self.chains.get(scope)
        defs = chains.reads.get(name) if chains is not None else None
        if not defs and not any(name.id in self._assigned.get(f, ()) for f in enclosing_chain(scope)[:-1]):
            defs = self._module_defs(name.id)  # a module-level dict read inside a function
        if not defs or name.id in self._mutated_names(scope):
            return None
        items = []
        for target in defs:
            stmt = self.graph.parents.get(target)
            value = stmt.value if type(stmt) is ast.Assign and stmt.targets == [target] else None
            if type(value) is not ast.Dict or any(type(k) is not ast.Constant for k in value.keys):
                return None
            found = [v for k, v in zip(value.keys, value.values) if k.value in keys]
            if every_key and not found:
                return None
            items.extend(found)
        return items

    def _callee_of(self, call: ast.Call, scope: FuncInfo) -> tuple[FuncInfo, int] | None:
        """(script function, index of the first positional argument) a call runs: a resolved call or a script
        class's constructor; None for anything else or a call with `*args`."""
        if any(type(a) is ast.Starred for a in call.args):
            return None
        target = self.graph.resolved.get(call)
        if target is not None:
            return target
        init = self._constructor(call, scope)
        return (init, 1) if init is not None else None

    def keys_read(self, callee: FuncInfo, index: int) -> set | None:
        """The constant keys through which CALLEE reads its parameter INDEX (`conf["lr"]`, `conf.get("lr", 0)`);
        None when the parameter is used any other way (passed on, iterated, stored, rebound, read by a closure)."""
        cache_key = (id(callee), index)
        if cache_key in self._keys_cache:
            return self._keys_cache[cache_key]
        self._keys_cache[cache_key] = None  # a cycle of calls handing the parameter on: not sure
        keys: set | None = set()
        if index >= len(callee.params) or isinstance(callee.node, ast.Module):
            keys = None
        else:
            param = callee.params[index]
            parents = self.graph.parents
            for n in ast.walk(callee.node):
                if type(n) is not ast.Name or n.id != param:
                    continue
                up = parents.get(n)
                if not isinstance(n.ctx, ast.Load) or self.graph.scope_of.get(n) is not callee:
                    keys = None
                elif type(up) is ast.Subscript and up.value is n and type(up.slice) is ast.Constant:
                    keys.add(up.slice.value)
                    continue
                elif type(up) is ast.Attribute and up.attr == "get" and type(call := parents.get(up)) is ast.Call \
                        and call.args and type(call.args[0]) is ast.Constant:
                    keys.add(call.args[0].value)
                    continue
                elif type(up) is ast.Call and n in up.args and (inner := self._callee_of(up, callee)) is not None:
                    passed = self.keys_read(inner[0], up.args.index(n) + inner[1])  # handed on to a script function
                    if passed is not None:
                        keys |= passed
                        continue
                    keys = None
                else:
                    keys = None
                break
        self._keys_cache[cache_key] = keys
        return keys

    def _module_defs(self, name: str) -> list[ast.Name] | None:
        """Every module-level definition of NAME, when no function rebinds (`global`) or changes it in place."""
        if any(name in self._mutated_names(f) for f in self.graph.functions):
            return None
        for f in self.graph.functions:
            if f is not self.graph.module and any(type(n) is ast.Global and name in n.names for n in f.nodes):
                return None
        return [n for n in self.graph.module.nodes if type(n) is ast.Name and n.id == name
                and not isinstance(n.ctx, ast.Load)] or None

    def _mutated_names(self, scope: FuncInfo) -> set[str]:
        """Names of SCOPE changed in place: subscript or attribute stores, `del`, in-place method calls."""
        hit = self._mutated.get(scope)
        if hit is None:
            hit = self._mutated[scope] = set()
            for n in scope.nodes:
                if type(n) in (ast.Subscript, ast.Attribute) and not isinstance(n.ctx, ast.Load):
                    base = n.value
                elif type(n) is ast.Call and type(n.func) is ast.Attribute and n.func.attr in _CHANGES_IN_PLACE:
                    base = n.func.value
                else:
                    continue
                if type(base) is ast.Name:
                    hit.add(base.id)
        return hit


def enclosing_chain(scope: FuncInfo) -> tuple[FuncInfo, ...]:
    """SCOPE and the functions enclosing it, innermost first (closures read their names)."""
    out = []
    chain: FuncInfo | None = scope
    while chain is not None:
        out.append(chain)
        chain = chain.parent
    return tuple(out)


def comprehension_names(graph: Graph) -> dict[ast.Name, str]:
    """Names bound by a comprehension's `for` are local to it: `[read(p) for p in val_paths]` and
    `[read(p) for p in train_paths]` in one function are two different `p`s. Maps each such Name node to a
    key unique to its comprehension (the first iterable is evaluated outside, so it keeps outer names)."""
    out: dict[ast.Name, str] = {}
    comps = [n for f in graph.functions for n in f.nodes if type(n) in COMPREHENSION_TYPES]
    comps.sort(key=lambda n: (n.lineno, n.col_offset, -n.end_lineno, -n.end_col_offset))  # outer first
    for comp in comps:
        names = {n.id for gen in comp.generators for n in ast.walk(gen.target) if type(n) is ast.Name}
        if not names:
            continue
        key = f"@{comp.lineno}:{comp.col_offset}"
        outside = {id(n) for n in ast.walk(comp.generators[0].iter)}
        for node in ast.walk(comp):
            if type(node) is ast.Name and node.id in names and id(node) not in outside:
                out[node] = node.id + key  # a nested comprehension comes later and rebinds its own names
    return out

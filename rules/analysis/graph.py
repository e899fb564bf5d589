"""The script's functions, their scopes and the call graph, built in one walk of the tree.

Every node is assigned to the function whose body it runs in (nested defs are separate functions; the module body
is the pseudo-function "<module>"); calls to functions defined in the script are resolved by name, with methods
resolved only when the method name is unique in the file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

_FUNC_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
LOOP_TYPES = (ast.For, ast.AsyncFor, ast.While)
COMPREHENSION_TYPES = frozenset({ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp})


@dataclass(eq=False)
class FuncInfo:
    """One function (or the module body): its node, parameters and the nodes that run in its own scope."""

    node: ast.AST
    name: str
    qualname: str
    params: list[str]
    parent: "FuncInfo | None"
    class_name: str | None = None
    nodes: list[ast.AST] = field(default_factory=list)  # nodes in this scope, in source (pre-)order
    local_funcs: dict[str, "FuncInfo"] = field(default_factory=dict)  # defs nested directly in this scope
    call_sites: list[tuple["FuncInfo", ast.Call]] = field(default_factory=list)  # resolved callers
    loops: list[ast.AST] = field(default_factory=list)

    @property
    def is_method(self) -> bool:
        return self.class_name is not None and bool(self.params) and self.params[0] in {"self", "cls"}

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)

    def __repr__(self) -> str:
        return f"FuncInfo({self.qualname})"


def _params(node: ast.AST) -> list[str]:
    args = node.args  # type: ignore[attr-defined]
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]


@dataclass
class Graph:
    """Functions, scopes, parents and resolved calls of one module."""

    module: FuncInfo
    functions: list[FuncInfo]
    func_of_node: dict[ast.AST, FuncInfo]  # def node -> its FuncInfo
    parents: dict[ast.AST, ast.AST]
    scope_of: dict[ast.AST, FuncInfo]
    by_name: dict[str, list[FuncInfo]]
    class_body: set[ast.AST]  # statements written directly in a class body
    resolved: dict[ast.Call, tuple[FuncInfo, int]] = field(default_factory=dict)  # call -> (callee, offset)
    preorder: list[ast.AST] = field(default_factory=list)  # every visited node, the module first, source order
    _index: dict[int, int] | None = None
    _end: list[int] | None = None
    _by_type: dict[type, list[ast.AST]] | None = None

    def of_type(self, *types: type) -> list[ast.AST]:
        """Nodes of exactly these types, in source (pre-)order."""
        if self._by_type is None:
            table: dict[type, list[ast.AST]] = {}
            for node in self.preorder:
                table.setdefault(type(node), []).append(node)
            self._by_type = table
        if len(types) == 1:
            return self._by_type.get(types[0], [])
        return [n for n in self.preorder if type(n) in types] if types else []

    def subtree(self, node: ast.AST) -> list[ast.AST]:
        """NODE and every node under it (what ast.walk yields, minus context/operator singletons), in preorder."""
        if self._index is None:
            index = {id(n): i for i, n in enumerate(self.preorder)}
            end = list(range(1, len(self.preorder) + 1))
            parents = self.parents
            for i in range(len(self.preorder) - 1, 0, -1):
                parent = parents.get(self.preorder[i])
                if parent is not None:
                    j = index[id(parent)]
                    if end[i] > end[j]:
                        end[j] = end[i]
            self._index, self._end = index, end
        i = self._index.get(id(node))
        if i is None:
            return list(ast.walk(node))
        return self.preorder[i:self._end[i]]  # type: ignore[index]

    def referenced(self, func: FuncInfo) -> bool:
        """Whether anything outside FUNC's own body can run it: its name loaded (called, passed, stored, decorated
        away) or written in a string (getattr, a dispatch table) anywhere else in the module. A function nothing
        refers to never runs, in a module that runs as a script (module-level calls); a module without any may be
        imported by another file, so there every function counts as referenced. Methods always count (dunder and
        framework hooks are called by name)."""
        if func.parent is None or func.class_name is not None or not self._runs_as_script():
            return True
        name = func.name
        own = {id(n) for n in self.subtree(func.node)}
        for node in self.of_type(ast.Name):
            if node.id == name and isinstance(node.ctx, ast.Load) and id(node) not in own:
                return True
        for node in self.of_type(ast.Attribute):
            if node.attr == name and id(node) not in own:
                return True
        for node in self.of_type(ast.Constant):
            if isinstance(node.value, str) and name in node.value and id(node) not in own:
                return True
        return False

    def _runs_as_script(self) -> bool:
        """Whether the module body calls something itself (directly or under `if __name__ == "__main__":`)."""
        body = getattr(self.module.node, "body", [])
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                return True
            if isinstance(stmt, ast.If) and any(isinstance(n, ast.Name) and n.id == "__name__"
                                                for n in ast.walk(stmt.test)):
                return True
        return False

    def visible_defs(self, call: ast.Call) -> list[FuncInfo] | None:
        """The defs a bare-name call can run by Python's scoping: those of its name in the innermost enclosing scope
        that defines one (several under `if`/`else`), none when no enclosing scope does; None when CALL is not a
        bare-name call in a known scope. A def nested in another function is never visible from outside it."""
        scope = self.scope_of.get(call) if isinstance(call.func, ast.Name) else None
        if scope is None:
            return None
        candidates = self.by_name.get(call.func.id, [])  # type: ignore[attr-defined]
        while scope is not None:
            found = [info for info in candidates if info.parent is scope]
            if found:
                return found
            scope = scope.parent
        return []

    def resolve(self, call: ast.Call, scope: FuncInfo) -> tuple[FuncInfo, int] | None:
        """The script function a call runs, and how many leading parameters the call does not pass (self)."""
        func = call.func
        if isinstance(func, ast.Name):
            chain: FuncInfo | None = scope
            while chain is not None:
                if func.id in chain.local_funcs:
                    return chain.local_funcs[func.id], 0
                chain = chain.parent
            return None
        if isinstance(func, ast.Attribute):
            candidates = [f for f in self.by_name.get(func.attr, []) if f.is_method]
            if len(candidates) == 1 and len(self.by_name[func.attr]) == 1:
                return candidates[0], 1
        return None


def _concrete_subclasses(*bases: type) -> frozenset:
    out: set = set()
    todo = list(bases)
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            out.add(sub)
            todo.append(sub)
    return frozenset(out)


# context and operator nodes are shared singletons with no position: never scopes, parents or analysis targets
SKIPPED_TYPES = _concrete_subclasses(ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_AST = ast.AST


def build_graph(tree: ast.Module) -> Graph:
    """Walk the tree once: scopes, parents, functions, loops, the preorder, and the resolved call graph.

    Context and operator singletons (Load, Store, Add, Eq, ...) are not visited."""
    module = FuncInfo(tree, "<module>", "<module>", [], None)
    functions = [module]
    func_of_node: dict[ast.AST, FuncInfo] = {tree: module}
    parents: dict[ast.AST, ast.AST] = {}
    scope_of: dict[ast.AST, FuncInfo] = {}
    class_body: set[ast.AST] = set()
    preorder: list[ast.AST] = [tree]
    skipped = SKIPPED_TYPES
    func_types = _FUNC_TYPES
    loop_types = LOOP_TYPES
    class_def = ast.ClassDef
    # (node, scope, enclosing class name or None): iterative pre-order so source order is kept
    stack: list[tuple[ast.AST, FuncInfo, str | None]] = [(c, module, None) for c in reversed(tree.body)]
    for child in tree.body:
        parents[child] = tree
    pop, push = stack.pop, stack.append
    while stack:
        node, scope, cls = pop()
        preorder.append(node)
        scope_of[node] = scope
        scope.nodes.append(node)
        kind = type(node)
        inner_scope, inner_cls = scope, None
        if kind in func_types:
            qual = f"{scope.qualname}.{node.name}" if scope is not module else node.name
            if cls:
                qual = f"{cls}.{node.name}"
            info = FuncInfo(node, node.name, qual, _params(node), scope, class_name=cls)
            functions.append(info)
            func_of_node[node] = info
            if cls is None:
                scope.local_funcs.setdefault(node.name, info)
            inner_scope = info
        elif kind is class_def:
            inner_cls = node.name
            class_body.update(node.body)
        elif kind in loop_types:
            scope.loops.append(node)
        children: list[tuple[ast.AST, FuncInfo, str | None]] = []
        for name in kind._fields:
            value = getattr(node, name, None)
            # only a function's body is its new scope; decorators, defaults and annotations run outside
            child_scope = inner_scope if (name == "body" or inner_scope is scope) else scope
            child_cls = inner_cls if child_scope is scope else None
            if type(value) is list:
                for item in value:
                    if isinstance(item, _AST) and type(item) not in skipped:
                        parents[item] = node
                        children.append((item, child_scope, child_cls))
            elif isinstance(value, _AST) and type(value) not in skipped:
                parents[value] = node
                children.append((value, child_scope, child_cls))
        for entry in reversed(children):
            push(entry)
    by_name: dict[str, list[FuncInfo]] = {}
    for info in functions[1:]:
        by_name.setdefault(info.name, []).append(info)
    graph = Graph(module, functions, func_of_node, parents, scope_of, by_name, class_body, preorder=preorder)
    call = ast.Call
    for info in functions:
        for node in info.nodes:
            if type(node) is call:
                target = graph.resolve(node, info)
                if target is not None:
                    graph.resolved[node] = target
                    target[0].call_sites.append((info, node))
    return graph


def last_name(node: ast.AST) -> str | None:
    """``a.b.c`` -> "c"; ``x`` -> "x"; a call -> its callee's last name; else None."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def ancestors(parents: dict, node: ast.AST | None) -> list[ast.AST]:
    """NODE and the nodes around it, innermost first."""
    out = []
    while node is not None:
        out.append(node)
        node = parents.get(node)
    return out


def inside(node: ast.AST | None, ancestor: ast.AST, parents: dict) -> bool:
    """True when NODE is ANCESTOR or lies within it."""
    while node is not None:
        if node is ancestor:
            return True
        node = parents.get(node)
    return False


def mentions(node: ast.AST, names: set[str]) -> bool:
    """True when NODE reads or binds any of NAMES as a plain name."""
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))

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


def build_graph(tree: ast.Module) -> Graph:
    """Walk the tree once: scopes, parents, functions, loops, and the resolved call graph."""
    module = FuncInfo(tree, "<module>", "<module>", [], None)
    functions = [module]
    func_of_node: dict[ast.AST, FuncInfo] = {tree: module}
    parents: dict[ast.AST, ast.AST] = {}
    scope_of: dict[ast.AST, FuncInfo] = {}
    class_body: set[ast.AST] = set()
    # (node, scope, enclosing class name or None): iterative pre-order so source order is kept
    stack: list[tuple[ast.AST, FuncInfo, str | None]] = [(c, module, None) for c in reversed(tree.body)]
    for child in tree.body:
        parents[child] = tree
    while stack:
        node, scope, cls = stack.pop()
        scope_of[node] = scope
        scope.nodes.append(node)
        inner_scope, inner_cls = scope, cls
        if isinstance(node, _FUNC_TYPES):
            qual = f"{scope.qualname}.{node.name}" if scope is not module else node.name
            if cls:
                qual = f"{cls}.{node.name}"
            info = FuncInfo(node, node.name, qual, _params(node), scope, class_name=cls)
            functions.append(info)
            func_of_node[node] = info
            if cls is None:
                scope.local_funcs.setdefault(node.name, info)
            inner_scope, inner_cls = info, None
        elif isinstance(node, ast.ClassDef):
            inner_cls = node.name
            class_body.update(node.body)
        elif isinstance(node, LOOP_TYPES):
            scope.loops.append(node)
        children = list(ast.iter_child_nodes(node))
        for child in reversed(children):
            parents[child] = node
            # decorators and default values run in the enclosing scope; only the body is the new scope
            if isinstance(node, _FUNC_TYPES) and (child in node.decorator_list or child is node.args):
                stack.append((child, scope, cls))
            else:
                stack.append((child, inner_scope, inner_cls if isinstance(node, ast.ClassDef) else None))
    by_name: dict[str, list[FuncInfo]] = {}
    for info in functions[1:]:
        by_name.setdefault(info.name, []).append(info)
    graph = Graph(module, functions, func_of_node, parents, scope_of, by_name, class_body)
    for info in functions:
        for node in info.nodes:
            if isinstance(node, ast.Call):
                target = graph.resolve(node, info)
                if target is not None:
                    graph.resolved[node] = target
                    target[0].call_sites.append((info, node))
    return graph

"""Receiver types for the validation-data taint (rules.analysis.taint): the script's classes and what names hold.

A class defined once in the script has a *family* (itself, its script bases and subclasses, joined by union-find):
attributes stored on an instance are fields of the family. `init_of` is the `__init__` a call `C(...)` runs (its
own or an inherited one). A local name or parameter has a known class when every binding agrees: `x = C(...)`,
`x = C(...).to(device)`, `x: C`, `x: C | None`, `self` in a method of C, or a parameter to which every resolved
call site passes a name of the same class. `owner` gives the family of an attribute's receiver when it is known.
"""

from __future__ import annotations

import ast

from rules.analysis.graph import FuncInfo, Graph

# calls that return their receiver's object (`Model(cfg).to(device)`)
_SAME_OBJECT = {"to", "cuda", "cpu", "float", "half", "bfloat16", "eval", "train", "requires_grad_"}


class ReceiverTypes:
    """The script classes of a module, their families and `__init__`s, and the class each local name holds."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._init_classes()
        self._types: dict[FuncInfo, dict[str, str]] = {}
        self._infer_types()

    def _init_classes(self) -> None:
        graph = self.graph
        defs: dict[str, list[ast.ClassDef]] = {}
        for node in graph.class_body:
            parent = graph.parents.get(node)
            if isinstance(parent, ast.ClassDef):
                defs.setdefault(parent.name, [])
                if parent not in defs[parent.name]:
                    defs[parent.name].append(parent)
        self.class_defs = {name: nodes[0] for name, nodes in defs.items() if len(nodes) == 1}
        root: dict[str, str] = {name: name for name in self.class_defs}

        def find(name: str) -> str:
            while root[name] != name:
                root[name] = root[root[name]]
                name = root[name]
            return name

        for name, node in self.class_defs.items():
            for base in node.bases:
                base_name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
                if base_name in root and base_name != name:
                    root[find(name)] = find(base_name)
        self.family = {name: find(name) for name in self.class_defs}
        methods: dict[str, dict[str, FuncInfo]] = {}
        for func in graph.functions:
            if func.class_name in self.class_defs and graph.parents.get(func.node) is self.class_defs[func.class_name]:
                methods.setdefault(func.class_name, {})[func.name] = func
        self.init_of: dict[str, FuncInfo | None] = {}
        for name in self.class_defs:
            self.init_of[name] = self._find_init(name, methods, set())

    def _find_init(self, name: str, methods: dict, seen: set) -> FuncInfo | None:
        if name in seen:
            return None
        seen.add(name)
        init = methods.get(name, {}).get("__init__")
        if init is not None:
            return init
        for base in self.class_defs[name].bases:
            base_name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if base_name in self.class_defs:
                found = self._find_init(base_name, methods, seen)
                if found is not None:
                    return found
        return None

    def _class_of_expr(self, value: ast.AST | None) -> str | None:
        """The script class an expression builds: `C(...)`, `C(...).to(device)`, `C(n) if flag else None`."""
        while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                and value.func.attr in _SAME_OBJECT:
            value = value.func.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in self.class_defs:
            return value.func.id
        if isinstance(value, ast.IfExp):
            return self._class_of_expr(value.body) or self._class_of_expr(value.orelse)
        return None

    def _class_of_annotation(self, ann: ast.AST | None) -> str | None:
        if ann is None:
            return None
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                ann = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):  # C | None
            return self._class_of_annotation(ann.left) or self._class_of_annotation(ann.right)
        if isinstance(ann, ast.Subscript):  # Optional[C]
            return self._class_of_annotation(ann.slice)
        name = ann.attr if isinstance(ann, ast.Attribute) else getattr(ann, "id", None)
        return name if name in self.class_defs else None

    def _infer_types(self) -> None:
        """Local names and parameters whose value is an instance of a known script class."""
        conflicts: dict[FuncInfo, set[str]] = {}
        for func in self.graph.functions:
            types: dict[str, str] = {}
            bad: set[str] = set()

            def note(name: str, cls: str | None) -> None:
                if cls is None:
                    return
                if types.get(name, cls) != cls:
                    bad.add(name)
                types[name] = cls

            if func.node is not self.graph.module.node:
                args = func.node.args  # type: ignore[attr-defined]
                for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    note(arg.arg, self._class_of_annotation(arg.annotation))
            if func.is_method and func.params[0] == "self" and func.class_name in self.class_defs:
                types["self"] = func.class_name
            for node in func.nodes:
                kind = type(node)
                if kind is ast.Assign:
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            note(target.id, self._class_of_expr(node.value))
                        elif isinstance(target, (ast.Tuple, ast.List)) \
                                and isinstance(node.value, (ast.Tuple, ast.List)):
                            for t, v in zip(target.elts, node.value.elts):
                                if isinstance(t, ast.Name):
                                    note(t.id, self._class_of_expr(v))
                elif kind is ast.AnnAssign and isinstance(node.target, ast.Name):
                    note(node.target.id, self._class_of_annotation(node.annotation) or self._class_of_expr(node.value))
            for name in bad:
                types.pop(name, None)
            self._types[func] = types
            conflicts[func] = bad
        # parameters typed by their call sites: every resolved call passes an instance of the same class
        for _ in range(2):
            for func in self.graph.functions:
                if not func.call_sites:
                    continue
                types = self._types[func]
                for index, name in enumerate(func.params):
                    if name in types or name in conflicts[func]:
                        continue
                    seen: set[str | None] = set()
                    for caller, call in func.call_sites:
                        arg = _argument(func, call, self.graph.resolved[call][1], index)
                        seen.add(self.type_of(arg.id, caller) if isinstance(arg, ast.Name) else None)
                    if len(seen) == 1 and None not in seen:
                        types[name] = seen.pop()  # type: ignore[assignment]

    def type_of(self, name: str, scope: FuncInfo) -> str | None:
        chain: FuncInfo | None = scope
        while chain is not None:
            found = self._types.get(chain, {}).get(name)
            if found is not None:
                return found
            if name in chain.params:
                return None
            chain = chain.parent
        return None

    def owner(self, receiver: ast.AST, scope: FuncInfo) -> str | None:
        """The class family of an attribute's receiver when it is known (self, a typed name, a class name)."""
        if not isinstance(receiver, ast.Name):
            return None
        cls = self.type_of(receiver.id, scope)
        if cls is None and receiver.id in self.class_defs:
            cls = receiver.id
        return self.family.get(cls) if cls else None


def _argument(callee: FuncInfo, call: ast.Call, offset: int, index: int) -> ast.AST | None:
    """The expression a call passes for parameter INDEX of CALLEE (positional or keyword), or None."""
    position = index - offset
    if 0 <= position < len(call.args) and not isinstance(call.args[position], ast.Starred):
        return call.args[position]
    name = callee.params[index] if index < len(callee.params) else None
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None

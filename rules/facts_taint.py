"""Validation-data taint: which values in the script derive from the validation split, across functions.

Labels: ("VAL", line) for a value derived from a validation source first seen at that line, and ("P", id, i) for
"whatever the caller passed as parameter i of function id". Each function is analysed once, flow-insensitively,
with its parameters symbolic; a call to a script function substitutes the callee's return summary with the labels
of the actual arguments (so a helper used for both training and validation batches does not taint training), and
a parameter is VAL when some call site passes VAL into it (fixed point over the call graph).

Sources: string constants naming `fineweb_val_` files, attributes (and otherwise unbound names) such as
`val_tokens`, `val_files`, `val_bytes`, `val_data`; everything computed from them is derived.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable

from rules.facts_graph import FuncInfo, Graph

VAL_NAME = re.compile(r"^(val|valid|validation)_(tokens?|toks|files?|data|bytes?|ids|stream|docs?|seqs?)$")
VAL_STRING = re.compile(r"fineweb_val|val_bytes_|_val_\*")
# in-place methods whose receiver takes in the labels of their arguments
_MUTATORS = {"append", "extend", "insert", "update", "add", "put", "copy_", "add_", "index_copy_",
             "index_add_", "scatter_", "scatter_add_", "masked_scatter_", "set_", "push"}

Label = tuple
Labels = frozenset
EMPTY: frozenset = frozenset()


class Taint:
    """Labels for every expression of the module, after the interprocedural fixed point."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.fid = {id(f): i for i, f in enumerate(graph.functions)}
        self.env: dict[FuncInfo, dict[str, frozenset]] = {}
        self.bound: dict[FuncInfo, set[str]] = {}
        self.summary: dict[FuncInfo, frozenset] = {f: EMPTY for f in graph.functions}
        self.attr_taint: dict[str, frozenset] = {}
        self.param_val: dict[tuple[int, int], frozenset] = {}  # (fid, i) -> VAL labels reaching it
        self._compiled: dict[ast.AST, tuple] = {}
        self._flows = {f: self._collect_flows(f) for f in graph.functions}
        self._solve()

    # ---- compiling expressions into atoms -------------------------------------------------------------------
    def atoms(self, expr: ast.AST | None, scope: FuncInfo) -> tuple:
        """A flat tuple of what an expression's labels depend on (compiled once per node)."""
        if expr is None:
            return ()
        hit = self._compiled.get(expr)
        if hit is None:
            out: list = []
            self._compile(expr, scope, out)
            hit = self._compiled[expr] = tuple(out)
        return hit

    def _compile(self, node: ast.AST, scope: FuncInfo, out: list) -> None:
        if isinstance(node, ast.Name):
            out.append(("n", node.id))
        elif isinstance(node, ast.Attribute):
            out.append(("a", node.attr, node.lineno))
            self._compile(node.value, scope, out)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str) and VAL_STRING.search(node.value):
                out.append(("v", ("VAL", node.lineno, f"`{node.value[:40]}`")))
        elif isinstance(node, ast.Subscript):
            self._compile(node.value, scope, out)  # the index selects, it does not carry data
        elif isinstance(node, ast.Call):
            target = self.graph.resolved.get(node)
            if target is not None and not any(isinstance(a, ast.Starred) for a in node.args):
                callee, offset = target
                pairs = []
                for i, arg in enumerate(node.args):
                    pairs.append((i + offset, self.atoms(arg, scope)))
                for kw in node.keywords:
                    if kw.arg in callee.params:
                        pairs.append((callee.params.index(kw.arg), self.atoms(kw.value, scope)))
                receiver = self.atoms(node.func.value, scope) if offset and isinstance(node.func, ast.Attribute) else ()
                out.append(("c", callee, tuple(pairs), receiver))
            else:
                for child in ast.iter_child_nodes(node):
                    self._compile(child, scope, out)
        elif isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        else:
            for child in ast.iter_child_nodes(node):
                self._compile(child, scope, out)

    # ---- evaluating ------------------------------------------------------------------------------------------
    def lookup(self, name: str, scope: FuncInfo) -> frozenset:
        chain: FuncInfo | None = scope
        while chain is not None:
            if name in self.bound.get(chain, ()):
                return self.env[chain].get(name, EMPTY)
            chain = chain.parent
        if VAL_NAME.match(name):  # an unbound validation name (a global set elsewhere, an exec'd fragment)
            return frozenset({("VAL", 0, f"`{name}`")})
        return EMPTY

    def eval_atoms(self, atoms: Iterable, scope: FuncInfo) -> frozenset:
        out: set = set()
        for atom in atoms:
            kind = atom[0]
            if kind == "n":
                out |= self.lookup(atom[1], scope)
            elif kind == "a":
                if VAL_NAME.match(atom[1]):
                    out.add(("VAL", atom[2], f"`.{atom[1]}`"))
                out |= self.attr_taint.get(atom[1], EMPTY)
            elif kind == "v":
                out.add(atom[1])
            else:
                _, callee, pairs, receiver = atom
                out |= self.eval_atoms(receiver, scope)
                summary = self.summary[callee]
                cid = self.fid[id(callee)]
                for label in summary:
                    if label[0] == "P" and label[1] == cid:
                        out |= self._arg_labels(pairs, label[2], scope)
                    else:
                        out.add(label)
        return frozenset(out)

    def _arg_labels(self, pairs: tuple, index: int, scope: FuncInfo) -> frozenset:
        for i, atoms in pairs:
            if i == index:
                return self.eval_atoms(atoms, scope)
        return EMPTY

    def labels(self, expr: ast.AST, scope: FuncInfo | None = None) -> frozenset:
        scope = scope or self.graph.scope_of.get(expr, self.graph.module)
        return self.eval_atoms(self.atoms(expr, scope), scope)

    def resolve(self, labels: frozenset) -> frozenset:
        """The VAL labels among LABELS, with parameter labels replaced by what call sites pass in."""
        out = {label for label in labels if label[0] == "VAL"}
        for label in labels:
            if label[0] == "P":
                out |= self.param_val.get((label[1], label[2]), EMPTY)
        return frozenset(out)

    # ---- flows -----------------------------------------------------------------------------------------------
    def _collect_flows(self, scope: FuncInfo) -> list[tuple[str, str, tuple]]:
        flows: list[tuple[str, str, tuple]] = []
        bound: set[str] = set()
        fid = self.fid[id(scope)]
        env: dict[str, frozenset] = {}
        for i, name in enumerate(scope.params):
            env[name] = frozenset({("P", fid, i)})
            bound.add(name)
        if scope.node is not self.graph.module.node and not scope.call_sites:
            for name in scope.params:  # an entry point nobody calls: trust its parameter names
                if VAL_NAME.match(name):
                    env[name] = env[name] | {("VAL", scope.line, f"parameter `{name}`")}

        def bind(target: ast.AST, atoms: tuple, in_class: bool = False) -> None:
            if isinstance(target, ast.Name):
                if in_class:
                    flows.append(("attr", target.id, atoms))
                else:
                    flows.append(("bind", target.id, atoms))
                    bound.add(target.id)
            elif isinstance(target, ast.Attribute):
                flows.append(("attr", target.attr, atoms))
            elif isinstance(target, ast.Subscript):
                base = target.value
                while isinstance(base, ast.Subscript):
                    base = base.value
                if isinstance(base, ast.Name):
                    flows.append(("bind", base.id, atoms))
            elif isinstance(target, (ast.Tuple, ast.List)):
                for elt in target.elts:
                    bind(elt.value if isinstance(elt, ast.Starred) else elt, atoms, in_class)

        for node in scope.nodes:
            in_class = node in self.graph.class_body
            if isinstance(node, ast.Assign):
                value = node.value
                for target in node.targets:
                    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                            and len(target.elts) == len(value.elts):
                        for t, v in zip(target.elts, value.elts):
                            bind(t, self.atoms(v, scope), in_class)
                    else:
                        bind(target, self.atoms(value, scope), in_class)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                bind(node.target, self.atoms(node.value, scope), in_class)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                bind(node.target, self.atoms(node.iter, scope))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                bind(node.optional_vars, self.atoms(node.context_expr, scope))
            elif isinstance(node, ast.NamedExpr):
                bind(node.target, self.atoms(node.value, scope))
            elif isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None:
                flows.append(("ret", "", self.atoms(node.value, scope)))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
                args = tuple(a for arg in [*node.args, *(k.value for k in node.keywords)]
                             for a in self.atoms(arg, scope))
                bind(node.func.value, args)
            elif isinstance(node, ast.arg) and node.arg not in bound:
                bound.add(node.arg)  # lambda parameters and the like: bound, never tainted
        self.env[scope] = env
        self.bound[scope] = bound
        return flows

    def _solve(self) -> None:
        """Iterate flows, return summaries and parameter taint until nothing changes."""
        for _ in range(12):
            changed = False
            for scope, flows in self._flows.items():
                env = self.env[scope]
                for _inner in range(6):
                    inner_changed = False
                    for kind, name, atoms in flows:
                        labels = self.eval_atoms(atoms, scope)
                        if not labels:
                            continue
                        if kind == "bind":
                            old = env.get(name, EMPTY)
                            if not labels <= old:
                                env[name] = old | labels
                                inner_changed = True
                        elif kind == "attr":
                            vals = self.resolve(labels)  # attributes are shared: only concrete VAL crosses
                            old = self.attr_taint.get(name, EMPTY)
                            if vals and not vals <= old:
                                self.attr_taint[name] = old | vals
                                inner_changed = changed = True
                        else:
                            old = self.summary[scope]
                            if not labels <= old:
                                self.summary[scope] = old | labels
                                changed = True
                    if not inner_changed:
                        break
            changed |= self._propagate_params()
            if not changed:
                break

    def _propagate_params(self) -> bool:
        changed = False
        for callee in self.graph.functions:
            cid = self.fid[id(callee)]
            for caller, call in callee.call_sites:
                _, offset = self.graph.resolved[call]
                args = [(i + offset, a) for i, a in enumerate(call.args) if not isinstance(a, ast.Starred)]
                args += [(callee.params.index(k.arg), k.value) for k in call.keywords if k.arg in callee.params]
                for index, arg in args:
                    vals = self.resolve(self.labels(arg, caller))
                    old = self.param_val.get((cid, index), EMPTY)
                    if vals and not vals <= old:
                        self.param_val[(cid, index)] = old | vals
                        changed = True
        return changed

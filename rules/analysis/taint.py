"""Validation-data taint: which values in the script derive from the validation split, across functions.

Labels: ("VAL", line, note) for a value derived from a validation source first seen at that line, and ("P", id, i)
for "whatever the caller passed as parameter i of function id". Each function is analysed once, with its local
names flow-sensitive (each definition holds its own labels and a read sees only the definitions that reach it,
rules.analysis.reaching) and its parameters symbolic, giving a *summary*: the labels of its return value in terms
of its own sources and its parameters. A call to a script function substitutes the summary with the labels of the actual arguments at that
call site, so a helper shared by the training and the validation loaders (`shard_paths(pattern)`,
`read_shard(path)`) taints only the validation side. A parameter is VAL when some call site passes VAL into it
(fixed point over the call graph); rules resolve parameters per call path where it matters (facts_causality).

Objects are handled the same way. Attributes stored on `self` in a method of class C are fields of C's class family
(C, its script bases and subclasses): concrete validation data stored there is seen by every read of that field on
a C instance, while a method parameter stored there (`self.paths = shard_paths(pattern)` in `__init__`) makes the
*instance* derive from the argument: `C(train_pattern)` is not validation data, `C(val_pattern)` is, and a method
called on it (`stream.take(n)`, whose summary reads `self`) gets the receiver's labels. A receiver whose class is
known (`totals = Totals()`, `totals: Totals`) stores into that class's fields; other attribute stores are keyed by
attribute name only (read by every attribute of that name). Which class a receiver holds is worked out in
rules.analysis.taint_types.

Sources: string constants naming `fineweb_val_` files, attributes (and otherwise unbound names) such as
`val_tokens`, `val_files`, `val_bytes`, `val_data`; everything computed from them is derived. What part of a value
a read takes (library members, dict literals read by constant keys) is rules.analysis.taint_keys. A source reached
only through one arm of a flag test (`a if FLAG else b`) carries that arm as a fourth element, ("VAL", line, note,
arms), so that the flag decides whether what it feeds runs (`guard_arms`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable

from rules.analysis.graph import SKIPPED_TYPES, FuncInfo, Graph
from rules.analysis.reaching import ReachingDefinitions
from rules.analysis.taint_keys import MUTATORS, KeyedReads, comprehension_names, enclosing_chain
from rules.analysis.taint_types import ReceiverTypes

VAL_NAME = re.compile(r"^(val|valid|validation)_(tokens?|toks|files?|data|bytes?|ids|stream|docs?|seqs?)$")
VAL_STRING = re.compile(r"fineweb_val|val_bytes_|_val_\*")
# methods returning a view of (or an element held by) their receiver, so filling the result fills the receiver
_ALIASING = {"setdefault", "get", "view", "reshape", "narrow", "select", "view_as", "flatten", "squeeze", "unsqueeze"}
_FLOW_TYPES = frozenset({ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension,
                         ast.withitem, ast.NamedExpr, ast.Return, ast.Yield, ast.YieldFrom, ast.Call, ast.arg})
_SKIPPED = SKIPPED_TYPES
_OPAQUE = frozenset({ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef})
_ANY_FIELD = "*"  # field key for "somewhere in the instance" (a method stores an argument through self.m(arg))

EMPTY: frozenset = frozenset()


class Taint:
    """Labels for every expression of the module, after the interprocedural fixed point."""

    def __init__(self, graph: Graph, flag_test: Callable[[ast.AST], bool] | None = None) -> None:
        self.graph = graph
        self._flag_test = flag_test  # True for a test that reads a configuration flag (rules.analysis.flags)
        self.fid = {id(f): i for i, f in enumerate(graph.functions)}
        self.env: dict[FuncInfo, dict[str, frozenset]] = {}
        self.bound: dict[FuncInfo, set[str]] = {}
        self.summary: dict[FuncInfo, frozenset] = {f: EMPTY for f in graph.functions}
        self.attr_taint: dict[str, frozenset] = {}  # attribute name -> VAL stored through an unknown receiver
        self.fields: dict[tuple[str, str], frozenset] = {}  # (class family, attribute) -> VAL stored in it
        self.attr_any: dict[str, frozenset] = {}  # attribute name -> VAL stored under that name anywhere
        self.stored_params: dict[FuncInfo, frozenset] = {}  # method -> indices of parameters kept in self
        self.param_fed: set[tuple[str, str]] = set()  # (class family, attribute) a method stores an argument in
        self.param_val: dict[tuple[int, int], frozenset] = {}  # (fid, i) -> VAL labels reaching it
        self._compiled: dict[ast.AST, tuple] = {}
        self.chains: dict[FuncInfo, ReachingDefinitions] = {}  # per function, for other analyses to read
        self._lookup_cache: dict[tuple[int, str], FuncInfo | None] = {}
        self.types = ReceiverTypes(graph)
        self._local_names = comprehension_names(graph)
        self._reads, self._updates = self._reaching()
        self.keyed = KeyedReads(graph, self.chains, self._local_names, self._constructor)
        self._flows = {f: self._collect_flows(f) for f in graph.functions}
        self._solve()

    # ---- flow sensitivity -----------------------------------------------------------------------------------
    def _reaching(self) -> tuple[dict[ast.Name, tuple[str, ...]], dict[ast.Name, tuple[str, ...]]]:
        """Each read of a local name -> the keys of the definitions that reach it (rules.analysis.reaching), and
        each `x += v` target -> the keys of the definitions it updates. A definition's key is the name plus its
        position, so two assignments of `x` in one function hold separate labels; the plain name still holds the
        union of all of them, for closures and for reads no local definition reaches."""
        reads: dict[ast.Name, tuple[str, ...]] = {}
        updates: dict[ast.Name, tuple[str, ...]] = {}
        for func in self.graph.functions:
            node = func.node
            args = node.args if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            params = [*args.posonlyargs, *args.args, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
                      *([args.kwarg] if args.kwarg else [])] if args else []
            try:
                chains = self.chains[func] = ReachingDefinitions(node, params)
            except RecursionError:
                continue  # too deep to walk: this function keeps the flow-insensitive meaning
            reads.update((n, tuple(sorted(def_key(d) for d in defs))) for n, defs in chains.reads.items() if defs)
            updates.update((n, tuple(sorted(def_key(d) for d in defs))) for n, defs in chains.updates.items())
        return reads, updates

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

    def _pairs(self, call: ast.Call, callee: FuncInfo, offset: int, scope: FuncInfo) -> tuple:
        pairs = [(i + offset, self._arg_atoms(arg, callee, i + offset, scope)) for i, arg in enumerate(call.args)]
        for kw in call.keywords:
            if kw.arg in callee.params:
                pairs.append((callee.params.index(kw.arg), self.atoms(kw.value, scope)))
        return tuple(pairs)

    def _arg_atoms(self, arg: ast.AST, callee: FuncInfo, index: int, scope: FuncInfo) -> tuple:
        """What an argument carries into CALLEE: a dict literal that the callee reads only by constant keys
        carries only those keys' values (`Model(conf)` reading `conf["dim"]` does not take in `conf["val_files"]`)."""
        if type(arg) is ast.Name:
            keys = self.keyed.keys_read(callee, index)
            items = self.keyed.dict_values(arg, scope, keys) if keys is not None else None
            if items is not None:
                return tuple(atom for item in items for atom in self.atoms(item, scope))
        return self.atoms(arg, scope)

    def _compile(self, node: ast.AST, scope: FuncInfo, out: list) -> None:
        kind = type(node)
        if kind is ast.Name:
            local = self._local_names.get(node)
            keys = self._reads.get(node) if local is None else None
            if keys:
                out.extend(("n", key) for key in keys)
            else:
                out.append(("n", local or node.id))
        elif kind is ast.Attribute:
            if self.keyed.is_module(node.value, scope):  # `np.load`, `glob.glob`: a library's member carries no data
                return
            owner = self.types.owner(node.value, scope)
            if owner is None:  # an object of unknown class: whatever it holds may be what is read
                out.append(("a", node.attr, node.lineno, None, ()))
                self._compile(node.value, scope, out)
            else:  # of a known class: this field's labels, and the object's only if the field holds an argument
                out.append(("a", node.attr, node.lineno, owner, self.atoms(node.value, scope)))
        elif kind is ast.Constant:
            if isinstance(node.value, str) and VAL_STRING.search(node.value):
                out.append(("v", ("VAL", node.lineno, f"`{node.value[:40]}`")))
        elif kind is ast.Subscript:
            items = self.keyed.dict_items(node, scope)
            if items is not None:  # `conf["train_files"]` of a dict literal: that key's values only
                for item in items:
                    self._compile(item, scope, out)
            else:
                self._compile(node.value, scope, out)  # the index selects, it does not carry data
        elif kind is ast.Call:
            starred = any(type(a) is ast.Starred for a in node.args)
            target = self.graph.resolved.get(node)
            if target is not None and not starred:
                callee, offset = target
                receiver = self.atoms(node.func.value, scope) if offset and isinstance(node.func, ast.Attribute) else ()
                out.append(("c", callee, self._pairs(node, callee, offset, scope), receiver))
                return
            init = self._constructor(node, scope)
            if init is not None and not starred:
                out.append(("k", init, self._pairs(node, init, 1, scope)))
                return
            self._compile_children(node, scope, out)
        elif kind is ast.IfExp and self._flag_test is not None and self._flag_test(node.test):
            # `val if FLAG else train`: each arm's sources remember the arm, so that the flag's state decides
            # whether what they reach runs (guard_arms)
            self._compile(node.test, scope, out)
            for arm in (node.body, node.orelse):
                inner: list = []
                self._compile(arm, scope, inner)
                out.append(("g", arm, tuple(inner)))
        elif kind in _OPAQUE:
            return
        else:
            self._compile_children(node, scope, out)

    def _compile_children(self, node: ast.AST, scope: FuncInfo, out: list) -> None:
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST) and type(item) not in _SKIPPED:
                        self._compile(item, scope, out)
            elif isinstance(value, ast.AST) and type(value) not in _SKIPPED:
                self._compile(value, scope, out)

    def _constructor(self, call: ast.Call, scope: FuncInfo) -> FuncInfo | None:
        """The `__init__` a call `C(...)` of a script class runs (None for other calls or classes without one)."""
        func = call.func
        types = self.types
        if isinstance(func, ast.Name) and func.id in types.class_defs and types.type_of(func.id, scope) is None:
            return types.init_of.get(func.id)
        return None

    # ---- evaluating ------------------------------------------------------------------------------------------
    def lookup(self, name: str, scope: FuncInfo) -> frozenset:
        key = (id(scope), name)
        try:
            home = self._lookup_cache[key]
        except KeyError:
            home = None
            chain: FuncInfo | None = scope
            while chain is not None:
                if name in self.bound.get(chain, ()):
                    home = chain
                    break
                chain = chain.parent
            if self._flows_ready:
                self._lookup_cache[key] = home
        if home is not None:
            return self.env[home].get(name, EMPTY)
        if VAL_NAME.match(name):  # an unbound validation name (a global set elsewhere, an exec'd fragment)
            return frozenset({("VAL", 0, f"`{name}`")})
        return EMPTY

    _flows_ready = False

    def eval_atoms(self, atoms: Iterable, scope: FuncInfo) -> frozenset:
        out: set = set()
        for atom in atoms:
            kind = atom[0]
            if kind == "n":
                out |= self.lookup(atom[1], scope)
            elif kind == "a":
                attr, owner = atom[1], atom[3]
                if VAL_NAME.match(attr):
                    out.add(("VAL", atom[2], f"`.{attr}`"))
                if owner is None:
                    out |= self.attr_any.get(attr, EMPTY)
                else:
                    out |= self.fields.get((owner, attr), EMPTY)
                    out |= self.fields.get((owner, _ANY_FIELD), EMPTY)
                    out |= self.attr_taint.get(attr, EMPTY)
                    if (owner, attr) in self.param_fed or (owner, _ANY_FIELD) in self.param_fed:
                        out |= self.eval_atoms(atom[4], scope)  # the field keeps what a caller passed in
            elif kind == "v":
                out.add(atom[1])
            elif kind == "c":
                _, callee, pairs, receiver = atom
                out |= self.eval_atoms(receiver, scope)
                summary = self.summary[callee]
                cid = self.fid[id(callee)]
                for label in summary:
                    if label[0] == "P" and label[1] == cid:
                        out |= self._arg_labels(pairs, label[2], scope)
                    else:
                        out.add(label)
            elif kind == "g":  # one arm of a flag test: its validation sources carry the arm
                arm = frozenset((atom[1],))
                for label in self.eval_atoms(atom[2], scope):
                    out.add((*label[:3], (label[3] if len(label) > 3 else EMPTY) | arm) if label[0] == "VAL" else label)
            else:  # "k" (constructor) and "s" (method keeping its arguments): the kept arguments' labels
                stored = self.stored_params.get(atom[1], EMPTY)
                for index, arg_atoms in atom[2]:
                    if index in stored:
                        out |= self.eval_atoms(arg_atoms, scope)
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
    def _collect_flows(self, scope: FuncInfo) -> list[tuple]:
        flows: list[tuple] = []
        bound: set[str] = set()
        fid = self.fid[id(scope)]
        env: dict[str, frozenset] = {}
        for i, name in enumerate(scope.params):
            env[name] = env[f"{name}#param"] = frozenset({("P", fid, i)})
            bound.update((name, f"{name}#param"))
        if scope.node is not self.graph.module.node and not scope.call_sites:
            for name in scope.params:  # an entry point nobody calls: trust its parameter names
                if VAL_NAME.match(name):
                    env[name] = env[f"{name}#param"] = env[name] | {("VAL", scope.line, f"parameter `{name}`")}
        self_name = scope.params[0] if scope.is_method and scope.class_name in self.types.family else None

        def bind(target: ast.AST, atoms: tuple, class_name: str | None = None) -> None:
            if isinstance(target, ast.Name):
                if class_name is not None:  # a class attribute
                    flows.append(("field", (self.types.family.get(class_name, class_name), target.id), atoms, False))
                else:
                    name = self._local_names.get(target, target.id)
                    # a definition binds its own key; a read used as a target (`buf[i] = v`, `buf.append(v)`)
                    # fills the definitions that reach it
                    keys = (def_key(target),) if isinstance(target.ctx, ast.Store) else self._reads.get(target, ())
                    for key in (name, *keys):
                        flows.append(("bind", key, atoms, None))
                        bound.add(key)
            elif isinstance(target, ast.Attribute):
                receiver = target.value
                if self_name is not None and isinstance(receiver, ast.Name) and receiver.id == self_name:
                    flows.append(("field", (self.types.family[scope.class_name], target.attr), atoms, True))
                    return
                owner = self.types.owner(receiver, scope)
                if owner is not None:
                    flows.append(("field", (owner, target.attr), atoms, False))
                else:
                    flows.append(("attr", target.attr, atoms, None))
            elif isinstance(target, ast.Subscript):
                base = target.value
                while isinstance(base, ast.Subscript):
                    base = base.value
                if isinstance(base, (ast.Name, ast.Attribute)):
                    bind(base, atoms)
            elif isinstance(target, (ast.Tuple, ast.List)):
                for elt in target.elts:
                    bind(elt.value if isinstance(elt, ast.Starred) else elt, atoms, class_name)
            elif isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute) \
                    and target.func.attr in _ALIASING:
                bind(target.func.value, atoms)  # by_len.setdefault(n, []).append(row) fills by_len

        class_body = self.graph.class_body
        parents = self.graph.parents
        for node in scope.nodes:
            kind = type(node)
            if kind not in _FLOW_TYPES:
                continue
            owner_class = parents[node].name if node in class_body else None  # type: ignore[attr-defined]
            if kind is ast.Assign:
                value = node.value
                for target in node.targets:
                    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                            and len(target.elts) == len(value.elts):
                        for t, v in zip(target.elts, value.elts):
                            bind(t, self.atoms(v, scope), owner_class)
                    else:
                        bind(target, self.atoms(value, scope), owner_class)
            elif isinstance(node, ast.AugAssign):
                before = tuple(("n", key) for key in self._updates.get(node.target, ()))  # x += v keeps x's labels
                bind(node.target, self.atoms(node.value, scope) + before, owner_class)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                bind(node.target, self.atoms(node.value, scope), owner_class)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                bind(node.target, self.atoms(node.iter, scope))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                bind(node.optional_vars, self.atoms(node.context_expr, scope))
            elif isinstance(node, ast.NamedExpr):
                bind(node.target, self.atoms(node.value, scope))
            elif isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None:
                flows.append(("ret", "", self.atoms(node.value, scope), None))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in MUTATORS:
                    args = tuple(a for arg in [*node.args, *(k.value for k in node.keywords)]
                                 for a in self.atoms(arg, scope))
                    bind(node.func.value, args)
                target = self.graph.resolved.get(node)
                if target is not None and target[1] == 1 and isinstance(node.func.value, (ast.Name, ast.Attribute)):
                    # obj.method(arg) where the method keeps arg in self: the object takes in arg's labels
                    callee = target[0]
                    atoms = (("s", callee, self._pairs(node, callee, 1, scope)),)
                    receiver = node.func.value
                    if self_name is not None and isinstance(receiver, ast.Name) and receiver.id == self_name:
                        flows.append(("field", (self.types.family[scope.class_name], _ANY_FIELD), atoms, True))
                    else:
                        bind(receiver, atoms)
            elif isinstance(node, ast.arg) and node.arg not in bound:
                bound.add(node.arg)  # lambda parameters and the like: bound, never tainted
        self.env[scope] = env
        self.bound[scope] = bound
        return flows

    def _solve(self) -> None:
        """Iterate flows, return summaries, fields and parameter taint until nothing changes."""
        self._flows_ready = True
        env_version = {scope: 0 for scope in self._flows}
        stamps: dict[FuncInfo, tuple] = {}
        shared_version = 0  # bumped whenever a summary, field, attribute or stored parameter grows
        chains = {scope: enclosing_chain(scope) for scope in self._flows}
        for _ in range(12):
            changed = False
            for scope, flows in self._flows.items():
                if not flows:
                    continue
                stamp = (shared_version, tuple(env_version.get(c, 0) for c in chains[scope]))
                if stamps.get(scope) == stamp:
                    continue  # nothing this scope reads has grown since it was last evaluated
                before = shared_version
                env = self.env[scope]
                fid = self.fid[id(scope)]
                for _inner in range(6):
                    inner_changed = False
                    for kind, name, atoms, extra in flows:
                        labels = self.eval_atoms(atoms, scope)
                        if not labels:
                            continue
                        if kind == "bind":
                            old = env.get(name, EMPTY)
                            if not labels <= old:
                                env[name] = old | labels
                                inner_changed = True
                                env_version[scope] += 1
                        elif kind == "ret":
                            old = self.summary[scope]
                            if not labels <= old:
                                self.summary[scope] = old | labels
                                changed = True
                                shared_version += 1
                        else:  # "attr" / "field": shared across calls, so only concrete VAL crosses
                            if extra:  # stored on self: the method's own parameters stay with the instance
                                own = {label for label in labels if label[0] == "P" and label[1] == fid}
                                kept = {label[2] for label in own if label[2] > 0}
                                if kept and name not in self.param_fed:
                                    self.param_fed.add(name)
                                    inner_changed = changed = True
                                    shared_version += 1
                                old_kept = self.stored_params.get(scope, EMPTY)
                                if not kept <= old_kept:
                                    self.stored_params[scope] = old_kept | kept
                                    inner_changed = changed = True
                                    shared_version += 1
                                labels = labels - own
                            vals = self.resolve(labels)
                            if not vals:
                                continue
                            table = self.fields if kind == "field" else self.attr_taint
                            old = table.get(name, EMPTY)
                            if not vals <= old:
                                table[name] = old | vals
                                attr = name[1] if kind == "field" else name
                                self.attr_any[attr] = self.attr_any.get(attr, EMPTY) | vals
                                inner_changed = changed = True
                                shared_version += 1
                    if not inner_changed:
                        break
                # a scope that grew shared state itself may read it back (recursion): evaluate it again next round
                stamps[scope] = (before if shared_version != before else shared_version,
                                 tuple(env_version.get(c, 0) for c in chains[scope]))
            if self._propagate_params():
                changed = True
                shared_version += 1
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


def guard_arms(labels: Iterable) -> list[ast.AST]:
    """The flag-test arms (`a if FLAG else b`) every validation source in LABELS came through; empty when some
    source reaches without one. A rule adds them to the nodes whose flag guards decide its severity."""
    vals = [label for label in labels if label[0] == "VAL"]
    if not vals or any(len(label) < 4 or not label[3] for label in vals):
        return []
    return sorted({arm for label in vals for arm in label[3]}, key=lambda n: (n.lineno, n.col_offset))


def def_key(node: ast.AST) -> str:
    """The environment key of one definition: the name and where it is defined (a parameter: `name#param`)."""
    if isinstance(node, ast.arg):
        return f"{node.arg}#param"
    name = node.id if isinstance(node, ast.Name) else getattr(node, "name", None) or getattr(node, "asname", None) \
        or getattr(node, "arg", "?")
    return f"{name}#{getattr(node, 'lineno', 0)}:{getattr(node, 'col_offset', 0)}"

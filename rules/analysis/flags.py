"""Environment-flag facts: which hyperparameters come from os.environ, their defaults, and the `if` guards using them.

Illegal code that sits behind a flag which is off by default is still reported, only at lower severity; so rules
need to know, for any node, which flag tests guard it and whether each is on by default or in the logs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable


def truthy(value: str) -> bool | None:
    """A flag's printed or default value as on/off (None when it is neither: a path, a name)."""
    text = value.strip().strip("'\"").lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", "", "none"}:
        return False
    try:
        return float(text) != 0
    except ValueError:
        return None


_UNKNOWN = object()  # an expression whose value cannot be known statically


@dataclass(frozen=True)
class FlagDef:
    """A hyperparameter read from the environment: `ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))`."""

    name: str  # attribute or variable name it is stored under
    env: str | None  # environment variable read
    default: Any  # value with the environment unset (_UNKNOWN when not computable)
    line: int


def _is_environ_get(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "getenv":
        return True
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "environ"
    )


def _env_name(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


class FlagEvaluator:
    """Evaluates small expressions (flag tests, hyperparameter initialisers) with environment defaults substituted."""

    def __init__(self, defs: dict[str, FlagDef], override: Callable[[str], str | None] | None = None) -> None:
        self.defs = defs
        self.override = override
        self.used_log = False

    def _lookup(self, name: str) -> Any:
        flag = self.defs.get(name)
        if self.override is not None:
            for key in (name, flag.env if flag else None):
                logged = self.override(key) if key else None
                if logged is not None:
                    self.used_log = True
                    return _parse_logged(logged)
        return flag.default if flag else _UNKNOWN

    def value(self, node: ast.AST) -> Any:  # noqa: C901 - a small interpreter reads best as one dispatch
        if isinstance(node, ast.Constant):
            return node.value
        if _is_environ_get(node):
            env = _env_name(node)  # type: ignore[arg-type]
            if env and self.override is not None:
                logged = self.override(env)
                if logged is not None:
                    self.used_log = True
                    return logged
            if len(node.args) >= 2:  # type: ignore[attr-defined]
                return self.value(node.args[1])  # type: ignore[attr-defined]
            return None
        if isinstance(node, ast.Attribute):
            return self._lookup(node.attr)
        if isinstance(node, ast.Name):
            return self._lookup(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.value(node.operand)
            return _UNKNOWN if inner is _UNKNOWN else not inner
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            return -inner if isinstance(inner, (int, float)) else _UNKNOWN
        if isinstance(node, ast.BoolOp):
            values = [self.value(v) for v in node.values]
            if isinstance(node.op, ast.And):
                if any(v is not _UNKNOWN and not v for v in values):
                    return False
                return _UNKNOWN if any(v is _UNKNOWN for v in values) else values[-1]
            if any(v is not _UNKNOWN and v for v in values):
                return True
            return _UNKNOWN if any(v is _UNKNOWN for v in values) else values[-1]
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = self.value(node.left), self.value(node.comparators[0])
            if left is _UNKNOWN or right is _UNKNOWN:
                return _UNKNOWN
            return _compare(node.ops[0], left, right)
        if isinstance(node, ast.Call):
            return self._call(node)
        return _UNKNOWN

    def _call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"int", "float", "bool", "str"} and len(node.args) == 1:
            inner = self.value(node.args[0])
            if inner is _UNKNOWN:
                return _UNKNOWN
            try:
                if func.id == "bool" and isinstance(inner, str):
                    return truthy(inner)
                return {"int": lambda v: int(float(v)), "float": float, "bool": bool, "str": str}[func.id](inner)
            except (TypeError, ValueError):
                return _UNKNOWN
        if isinstance(func, ast.Attribute) and func.attr in {"lower", "strip", "upper"}:
            inner = self.value(func.value)
            return getattr(inner, func.attr)() if isinstance(inner, str) else _UNKNOWN
        return _UNKNOWN


def _parse_logged(text: str) -> Any:
    t = text.strip().strip("'\"")
    low = t.lower()
    if low in {"true", "false"}:
        return low == "true"
    try:
        return int(t)
    except ValueError:
        try:
            return float(t)
        except ValueError:
            return t


def _compare(op: ast.cmpop, left: Any, right: Any) -> Any:
    try:
        if isinstance(left, str) != isinstance(right, str):  # "1" == 1 after int() conversions in logs
            left, right = str(left), str(right)
        table = {
            ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Gt: lambda a, b: a > b,
            ast.GtE: lambda a, b: a >= b, ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
        }
        return table[type(op)](left, right) if type(op) in table else _UNKNOWN
    except TypeError:
        return _UNKNOWN


def collect_flag_defs(tree: ast.Module, graph: Any = None) -> dict[str, FlagDef]:
    """Every `name = <expr reading os.environ>` (class attributes of Hyperparameters, module or function locals).

    With GRAPH (rules.analysis.graph.Graph of TREE) only the environment reads are visited, not the whole tree."""
    defs: dict[str, FlagDef] = {}
    pending: list[tuple[str, ast.AST, str | None, int]] = []
    for node, first_env_call in (_env_assignments(graph) if graph is not None else _env_assignments_walk(tree)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name:
                pending.append((name, node.value, _env_name(first_env_call), node.lineno))
    evaluator = FlagEvaluator(defs)
    for name, value, env, line in pending:
        defs[name] = FlagDef(name, env, evaluator.value(value), line)
    return defs


def _env_assignments_walk(tree: ast.Module) -> list[tuple[ast.AST, ast.Call]]:
    """(assignment, its first environment read) in ast.walk order."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            env_calls = [n for n in ast.walk(node.value) if _is_environ_get(n)]
            if env_calls:
                out.append((node, env_calls[0]))
    return out


def _env_assignments(graph: Any) -> list[tuple[ast.AST, ast.Call]]:
    """The same as _env_assignments_walk, found from the environment reads upwards (same order: breadth-first)."""
    found: dict[int, tuple[tuple, ast.AST, tuple, ast.Call]] = {}
    parents = graph.parents
    order = {}
    for call in graph.of_type(ast.Call):
        if not _is_environ_get(call):
            continue
        node, depth = call, 0
        while node is not None and not isinstance(node, ast.stmt):
            node, depth = parents.get(node), depth + 1
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None or not _inside(call, node.value,
                                                                                                  parents):
            continue
        if not order:
            order = {id(n): i for i, n in enumerate(graph.preorder)}
        stmt_depth, up = 0, parents.get(node)
        while up is not None:
            stmt_depth, up = stmt_depth + 1, parents.get(up)
        key = (stmt_depth, order[id(node)])
        call_key = (depth, order[id(call)])
        old = found.get(id(node))
        if old is None or call_key < old[2]:
            found[id(node)] = (key, node, call_key, call)
    return [(node, call) for _, node, _, call in sorted(found.values(), key=lambda item: item[0])]


def _inside(node: ast.AST, ancestor: ast.AST, parents: dict) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = parents.get(node)
    return False


def mentions_flag(test: ast.AST, defs: dict[str, FlagDef]) -> str | None:
    """The first flag a test reads (attribute/variable with a FlagDef, or an env var), else None."""
    for node in ast.walk(test):
        if _is_environ_get(node):
            return _env_name(node)  # type: ignore[arg-type]
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name and name in defs:
            return name
    return None


MIN_PRINTED_LITERAL = 8  # literal characters a printed template needs before its appearance in a log means much


def printed_patterns(stmts: list[ast.AST], into_defs: bool = False) -> tuple[str, ...]:
    """Regular expressions for the lines STMTS print: every call statement whose first argument is a string or an
    f-string with at least MIN_PRINTED_LITERAL literal characters (formatted values match anything), nested
    blocks included, nested functions and classes only with INTO_DEFS (they run when called, not here)."""
    found: list[str] = []
    todo = list(stmts)
    while todo:
        node = todo.pop()
        if not into_defs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and node.value.args:
            pattern = _template(node.value.args[0])
            if pattern is not None:
                found.append(pattern)
        todo.extend(ast.iter_child_nodes(node))
    return tuple(dict.fromkeys(found))


def _template(arg: ast.AST) -> str | None:
    import re

    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        parts = [arg.value]
    elif isinstance(arg, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.Constant) else None for v in arg.values]
    else:
        return None
    literal = "".join(p for p in parts if p)
    if len(literal.strip()) < MIN_PRINTED_LITERAL:
        return None
    return "".join(re.escape(p) if p is not None else ".+?" for p in parts if p != "").strip()


@dataclass(frozen=True)
class FlagGuard:
    """An `if` (or early return, or conditional expression) whose test reads an environment flag."""

    flag: str
    env: str | None
    line: int
    negated: bool  # the guarded code runs when the test is false (else branch, early return)
    test: ast.AST
    defs: Any  # dict[str, FlagDef], kept for re-evaluation with logged values
    printed: tuple[str, ...] = ()  # patterns of the lines the guarded branch itself prints (printed_patterns)

    def enabled(self, logged: Callable[[str], str | None] | None,
                printed_in_logs: Callable[[str], bool] | None = None) -> tuple[bool | None, str]:
        """Whether the guarded code runs, with the flags' defaults or the values the logs printed. A line that only
        the guarded branch prints, found in the run's output, shows it ran whatever the defaults say."""
        evaluator = FlagEvaluator(self.defs, logged)
        value = evaluator.value(self.test)
        source = "logs" if evaluator.used_log else "default"
        result = None if value is _UNKNOWN else (not value) if self.negated else bool(value)
        if result is not True and printed_in_logs is not None and any(printed_in_logs(p) for p in self.printed):
            return True, "logs: a line this branch prints is in the run output"
        return result, source

    def describe(self) -> str:
        text = ast.unparse(self.test)
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"`{'not ' if self.negated else ''}{text}`"

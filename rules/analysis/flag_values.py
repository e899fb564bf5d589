"""Flag values: a small evaluator for flag tests and hyperparameter initialisers, with environment defaults (or the
values the logs printed) substituted."""

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


def _is_environ_get(node: ast.AST, helpers: frozenset[str] = frozenset()) -> bool:
    """`os.environ.get(...)`, `os.getenv(...)`, or a call of one of HELPERS (env_helpers) with a constant name."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "getenv":
        return True
    if isinstance(func, ast.Name) and func.id in helpers:
        return _env_name(node) is not None
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


def _env_default(call: ast.Call) -> ast.AST | None:
    """The default argument of an environment read: the second positional one or `default=`."""
    if len(call.args) >= 2:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "default"), None)


def _is_env_function(node: ast.AST) -> bool:
    """`os.environ.get` or `os.getenv` itself (not called)."""
    return isinstance(node, ast.Attribute) and (node.attr == "getenv" or (
        node.attr == "get" and isinstance(node.value, ast.Attribute) and node.value.attr == "environ"))


def env_helpers(tree: ast.Module) -> frozenset[str]:
    """Module-level functions that read the environment variable their first parameter names (`def env_bool(name,
    default): raw = os.environ.get(name) ...`): a call `env_bool("TTT_ENABLED", False)` reads TTT_ENABLED, with
    that default; and names bound to `os.environ.get` itself. What the body does is the evidence, not the name."""
    found = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_env_function(node.value)
             for t in node.targets if isinstance(t, ast.Name)}  # `e = os.environ.get`: e("X", "0") reads X
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef) or not func.args.args:
            continue
        first = func.args.args[0].arg
        if any(_is_environ_get(n) and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == first
               for n in ast.walk(func)):
            found.add(func.name)
    return frozenset(found)


class FlagEvaluator:
    """Evaluates small expressions (flag tests, hyperparameter initialisers) with environment defaults substituted."""

    def __init__(self, defs: dict[str, FlagDef], override: Callable[[str], str | None] | None = None) -> None:
        self.defs = defs
        self.override = override
        self.used_log = False
        self.helpers: frozenset[str] = getattr(defs, "helpers", frozenset())

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
        if _is_environ_get(node, self.helpers):
            env = _env_name(node)  # type: ignore[arg-type]
            # A helper converts what it reads (`env_bool`, `env_int`): its value is the parsed text, not the string.
            parse = _parse_logged if isinstance(node.func, ast.Name) else (lambda v: v)  # type: ignore[attr-defined]
            if env and self.override is not None:
                logged = self.override(env)
                if logged is not None:
                    self.used_log = True
                    return parse(logged)
            default = _env_default(node)  # type: ignore[arg-type]
            if default is None:
                return None
            value = self.value(default)
            return parse(value) if isinstance(value, str) else value
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
        if (name := constant_getattr(node)) is not None:  # getattr(h, "ttt_enabled", False) reads h.ttt_enabled
            return self._lookup(name)
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
        if isinstance(func, ast.Attribute) and func.attr in {"startswith", "endswith"} and len(node.args) == 1:
            inner, prefix = self.value(func.value), self.value(node.args[0])
            ok = isinstance(inner, str) and isinstance(prefix, str)
            return getattr(inner, func.attr)(prefix) if ok else _UNKNOWN
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


def constant_getattr(node: ast.AST) -> str | None:
    """The attribute name of `getattr(obj, "name")` or `getattr(obj, "name", default)`, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) in (2, 3) and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)):
        return node.args[1].value
    return None

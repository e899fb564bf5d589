"""Environment-flag facts: which hyperparameters come from os.environ, their defaults, and the `if` guards using them.

Illegal code that sits behind a flag which is off by default is still reported, only at lower severity; so rules
need to know, for any node, which flag tests guard it and whether each is on by default or in the logs: by the
logged values, by a line only the branch prints (on), or by such a line missing where later ones are not (off).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from rules.analysis.flag_values import (
    _UNKNOWN,
    FlagDef,
    FlagEvaluator,
    _env_name,
    _is_environ_get,
    constant_getattr,
    env_helpers,
)
from rules.analysis.graph import inside


def collect_flag_defs(tree: ast.Module, graph: Any = None) -> FlagDefs:
    """Every `name = <expr reading os.environ>` (class attributes of Hyperparameters, module or function locals).

    With GRAPH (rules.analysis.graph.Graph of TREE) only the environment reads are visited, not the whole tree."""
    defs = FlagDefs(tree, graph)
    defs.helpers = helpers = env_helpers(tree)
    pending: list[tuple[str, ast.AST, str | None, int]] = []
    for node, first_env_call in (_env_assignments(graph, helpers) if graph is not None
                                 else _env_assignments_walk(tree, helpers)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name:
                pending.append((name, node.value, _env_name(first_env_call), node.lineno))
    evaluator = FlagEvaluator(defs)
    for name, value, env, line in pending:
        defs[name] = FlagDef(name, env, evaluator.value(value), line)
    return defs


def _env_assignments_walk(tree: ast.Module, helpers: frozenset[str] = frozenset()) -> list[tuple[ast.AST, ast.Call]]:
    """(assignment, its first environment read) in ast.walk order."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            env_calls = [n for n in ast.walk(node.value) if _is_environ_get(n, helpers)]
            if env_calls:
                out.append((node, env_calls[0]))
    return out


def _env_assignments(graph: Any, helpers: frozenset[str] = frozenset()) -> list[tuple[ast.AST, ast.Call]]:
    """The same as _env_assignments_walk, found from the environment reads upwards (same order: breadth-first)."""
    found: dict[int, tuple[tuple, ast.AST, tuple, ast.Call]] = {}
    parents = graph.parents
    order = {}
    for call in graph.of_type(ast.Call):
        if not _is_environ_get(call, helpers):
            continue
        node, depth = call, 0
        while node is not None and not isinstance(node, ast.stmt):
            node, depth = parents.get(node), depth + 1
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None or not inside(call, node.value,
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


def mentions_flag(test: ast.AST, defs: dict[str, FlagDef]) -> str | None:
    """The first flag a test reads (attribute/variable with a FlagDef, a constant-name getattr of one, or an env
    var), else None."""
    helpers = getattr(defs, "helpers", frozenset())
    for node in ast.walk(test):
        if _is_environ_get(node, helpers):
            return _env_name(node)  # type: ignore[arg-type]
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        name = constant_getattr(node) or name
        if name and name in defs:
            return name
    return None


MIN_PRINTED_LITERAL = 8  # literal characters a printed template needs before its appearance in a log means much


def printed_patterns(stmts: list[ast.AST], into_defs: bool = False) -> tuple[str, ...]:
    """Regular expressions for the lines STMTS print: every call statement whose first argument is a string or an
    f-string with at least MIN_PRINTED_LITERAL literal characters (formatted values match anything), nested
    blocks included, nested functions and classes only with INTO_DEFS (they run when called, not here)."""
    return tuple(dict.fromkeys(p.pattern for p in _prints(stmts, into_defs)))


@dataclass(frozen=True)
class Printed:
    """One call statement that prints a line template: `log0(f"ttt:start lr={args.ttt_lr}")`."""

    pattern: str  # _template of its first argument
    channel: str  # the callee with every other argument (`log0`, `print(file=side)`): where the line goes
    node: ast.Expr


def _prints(stmts: list[ast.AST], into_defs: bool = False) -> list[Printed]:
    found: list[Printed] = []
    todo = list(reversed(stmts))
    while todo:
        node = todo.pop()
        if not into_defs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and node.value.args:
            pattern = _template(node.value.args[0])
            if pattern is not None:
                found.append(Printed(pattern, _channel(node.value), node))
        todo.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def _channel(call: ast.Call) -> str:
    extra = [ast.unparse(a) for a in call.args[1:]]
    extra += [f"{k.arg or '**'}={ast.unparse(k.value)}" for k in call.keywords if k.arg != "flush"]
    return ast.unparse(call.func) + (f"({', '.join(extra)})" if extra else "")


def _template(arg: ast.AST) -> str | None:
    parts = _parts(arg)
    if parts is None:
        return None
    literal = "".join(p for p in parts if isinstance(p, str))
    if len(literal.strip()) < MIN_PRINTED_LITERAL:
        return None
    if isinstance(parts[0], str):  # log lines are read stripped: the template's outer blanks are not in them
        parts[0] = parts[0].lstrip()
    if isinstance(parts[-1], str):
        parts[-1] = parts[-1].rstrip()
    return "".join(re.escape(p) if isinstance(p, str) else ".+?" for p in parts if p != "")


def _parts(arg: ast.AST) -> list[str | ast.FormattedValue] | None:
    """The literal text (str) and formatted values of a printed string, in order; None when not a string."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.JoinedStr):
        return [v.value if isinstance(v, ast.Constant) else v for v in arg.values]  # type: ignore[misc]
    return None


class FlagDefs(dict):
    """name -> FlagDef of one unit, with its tree and graph: where a guard reads its branch's prints and those after."""

    def __init__(self, tree: ast.Module, graph: Any = None) -> None:
        super().__init__()
        self.tree, self.graph = tree, graph  # the readings below need the graph (rules.analysis.graph.Graph)
        self.helpers: frozenset[str] = frozenset()  # functions that read the variable they are given (env_helpers)
        self._readings: dict[int, tuple[list[Printed], list[Printed]] | None] = {}

    @cached_property
    def print_counts(self) -> dict[str, int]:
        """How many call statements of the whole unit print each line template."""
        return Counter(pattern for node in self.graph.of_type(ast.Expr) for pattern in printed_patterns([node]))

    def reading(self, test: ast.AST, negated: bool) -> tuple[list[Printed], list[Printed]] | None:
        """The distinctive lines the branch of TEST's `if` always prints, and those its function prints after it."""
        key = id(test) * 2 + negated
        if key not in self._readings:
            stmt = self.graph.parents.get(test) if self.graph is not None else None
            self._readings[key] = self._read(stmt, test, negated) if isinstance(stmt, ast.If) else None
        return self._readings[key]

    def _read(self, stmt: ast.If, test: ast.AST, negated: bool) -> tuple[list[Printed], list[Printed]] | None:
        if stmt.test is not test or (negated and (not stmt.orelse or isinstance(stmt.body[-1], ast.Return))):
            return None  # an early return: the guarded code is the rest of the function, not a branch
        branch = stmt.orelse if negated else stmt.body
        if not self._only_way_in(branch):
            return None
        unique, parents = self.print_counts, self.graph.parents
        in_try = any(isinstance(up, _TRY_TYPES) for up in _ancestors(stmt, parents))
        announced = [p for p in _always_printed(branch, in_try)
                     if unique.get(p.pattern) == 1 and self._capturable(p.node.value.args[0])]
        return announced, [p for p in _printed_after(stmt, parents) if unique.get(p.pattern) == 1]

    def _only_way_in(self, branch: list[ast.stmt]) -> bool:
        """Is what BRANCH calls reached through it alone? Code another flag-guarded call reaches too may be judged
        by this guard (facts: the site least off by default) though it ran by the other (#64, two phases)."""
        graph, closure = self.graph, set()
        inside = {id(n) for stmt in branch for n in graph.subtree(stmt)}
        todo = [graph.resolved[n][0] for stmt in branch for n in graph.subtree(stmt) if n in graph.resolved]
        while todo:
            if (func := todo.pop()) not in closure:
                closure.add(func)
                todo += [graph.resolved[n][0] for n in func.nodes if n in graph.resolved]
        # Facts give a function its call sites' guards only when every site has some: then one outside is a way in.
        return not any(any(id(site) not in inside and caller not in closure for caller, site in func.call_sites)
                       and all(self._guarded(site) for _, site in func.call_sites) for func in closure)

    def _guarded(self, node: ast.AST, depth: int = 0) -> bool:
        """Is NODE behind a flag test: an enclosing `if`, an early return before it, or guards at every call site."""
        scope = self.graph.scope_of.get(node, self.graph.module)
        child = node
        for up in _ancestors(node, self.graph.parents):
            if isinstance(up, (ast.If, ast.IfExp)) and child is not up.test and mentions_flag(up.test, self):
                return True
            child = up
        for stmt in getattr(scope.node, "body", []) if scope is not self.graph.module else []:
            if stmt is child:
                break
            if isinstance(stmt, ast.If) and isinstance(stmt.body[-1], ast.Return) and mentions_flag(stmt.test, self):
                return True
        return bool(scope.call_sites) and depth < 4 and all(self._guarded(c, depth + 1) for _, c in scope.call_sites)

    def _capturable(self, arg: ast.AST) -> bool:
        """Is the printed line kept among a log's output lines whatever its values (they omit lines that look like
        Python)? No brackets, `#`, `%`, braces, newlines or ` =` in its text, a literal start, a number at the end."""
        parts = _parts(arg) or [""]
        first, last = parts[0], parts[-1]
        if any(re.search(r"[()#%{}\n\r]|\s=|=\s|os\.environ", p) for p in parts if isinstance(p, str)) \
                or not (isinstance(first, str) and first.strip()) or re.match(_KEYWORD_START, first.lstrip()):
            return False
        return (isinstance(last, str) and last.strip() != "") or self._numeric(last)

    def _numeric(self, value: Any) -> bool:
        """A formatted value that prints as a number: a numeric format spec, a number, len(), a numeric flag."""
        if not isinstance(value, ast.FormattedValue) or value.conversion != -1:
            return False
        spec, inner = value.format_spec, value.value
        if isinstance(spec, ast.JoinedStr):
            return bool(re.search(r"[bdeEfFgGnoxX%]$", "".join(str(getattr(v, "value", "?")) for v in spec.values)))
        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "len":
            return True
        flag = self.get(inner.attr if isinstance(inner, ast.Attribute) else getattr(inner, "id", ""))
        number = inner.value if isinstance(inner, ast.Constant) else getattr(flag, "default", None)
        return isinstance(number, (int, float))


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Module)
_TRY_TYPES = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_KEYWORD_START = r"(?:def|class|import|from|if|elif|for|while|return)\b"


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    """The nodes around NODE inside its function (or module), innermost first."""
    out: list[ast.AST] = []
    while (node := parents.get(node)) is not None and not isinstance(node, _SCOPES):
        out.append(node)
    return out


def _always_printed(stmts: list[ast.stmt], in_try: bool) -> list[Printed]:
    """The call statements of STMTS that print on every path: top-level (or in a `with`), before anything that may
    leave the block; inside a `try` (an exception may skip the rest and the run go on), before anything else."""
    out: list[Printed] = []
    for stmt in stmts:
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            inner = _always_printed(stmt.body, in_try)
            out += inner
            if _may_leave(stmt) or (in_try and len(inner) < len(stmt.body)):
                break
            continue
        printed = _prints([stmt]) if isinstance(stmt, ast.Expr) else []
        out += printed
        if _may_leave(stmt) or (in_try and not printed):
            break
    return out


def _may_leave(stmt: ast.AST) -> bool:
    """Can STMT end its block early: a return or raise in it, or a break/continue of a loop around it."""
    todo: list[tuple[ast.AST, bool]] = [(stmt, False)]
    while todo:
        node, in_loop = todo.pop()
        if isinstance(node, (ast.Return, ast.Raise)) or (isinstance(node, (ast.Break, ast.Continue)) and not in_loop):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        todo.extend((child, in_loop or isinstance(node, _LOOPS)) for child in ast.iter_child_nodes(node))
    return False


def _printed_after(stmt: ast.stmt, parents: dict[ast.AST, ast.AST]) -> list[Printed]:
    """What the function (or module) prints in the statements after STMT, in its block and each block around it:
    a run that printed one got past STMT. Not the rest of a loop body (the branch may run in a later iteration)."""
    out: list[Printed] = []
    for node in [stmt, *_ancestors(stmt, parents)]:
        parent = parents.get(node)
        for field in ("orelse", "finalbody") if isinstance(parent, _LOOPS) else ("body", "orelse", "finalbody"):
            block = getattr(parent, field, None)
            if isinstance(block, list) and any(s is node for s in block):
                out += _prints(block[[id(s) for s in block].index(id(node)) + 1:])
    return out


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
        if result is not False and not evaluator.used_log and printed_in_logs and (why := self.off_by_logs(
                printed_in_logs)):
            return False, why
        return result, source

    def off_by_logs(self, printed_in_logs: Callable[[str], bool]) -> str | None:
        """Why the run output shows this branch did not run, else None: it lacks every line the branch prints, one
        printed on every path and by this branch alone, but has a later line of the same callee, so the run got past
        the branch and that callee's lines reach the log (a log keeps its first output lines: the earlier one too)."""
        reading = self.defs.reading(self.test, self.negated) if isinstance(self.defs, FlagDefs) else None
        announced, after = reading or ([], [])
        if not announced or any(printed_in_logs(p) for p in (*self.printed, *(a.pattern for a in announced))):
            return None
        for said in announced:
            seen = next((p for p in after if p.channel == said.channel and printed_in_logs(p.pattern)), None)
            if seen is not None:
                text = "".join(p if isinstance(p, str) else "…" for p in _parts(said.node.value.args[0]) or ())
                return (f"logs: the branch always prints `{text.strip()[:60]}` (line {said.node.lineno}) and no run "
                        f"log has it, though they have line {seen.node.lineno}'s, printed after the branch through "
                        f"the same `{said.channel}`")
        return None

    def describe(self) -> str:
        text = ast.unparse(self.test)
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"`{'not ' if self.negated else ''}{text}`"

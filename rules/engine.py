"""Run every static rule over the Python units of a submission: one parse and one tree traversal per unit.

Rules are found by walking the ``rules`` package (every ``Rule`` subclass with an ID). ``visit_<NodeType>`` is
dispatched to every rule defining it (Fixit-style batched visitors) over the preorder that the shared facts graph
records in its single traversal, so rules and facts share one walk; a rule defining ``leave_<NodeType>`` gets a
classic pre/post-order walk instead. Then each rule's ``finish()`` runs. Shared facts are computed lazily once per
unit. Suppression comments are not honoured.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Protocol

import rules
from rules.analysis.facts import Facts
from rules.analysis.graph import SKIPPED_TYPES
from rules.base import LogHints, Rule, RuleContext
from rules.finding import Finding
from rules.parsing import parse_python


class UnitLike(Protocol):
    """What the engine needs of a code unit (harness.submission.code.CodeUnit satisfies it)."""

    path: str
    text: str
    origin: str


@dataclass(frozen=True)
class SourceUnit:
    """A plain unit for callers without a CodeBundle (tests, benches)."""

    path: str
    text: str
    origin: str = "shipped"


@dataclass
class EngineResult:
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # units that could not be parsed, analysis too deep
    failed: dict[str, str] = field(default_factory=dict)  # rule ID -> why it raised (that rule alone is not checked)
    seconds: dict[str, float] = field(default_factory=dict)  # unit path -> analysis time


@lru_cache(maxsize=1)
def discover_rules() -> tuple[type[Rule], ...]:
    """Every concrete Rule subclass defined in a module of the rules package, ordered by CODE."""
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(rules.__path__):
        if info.ispkg or info.name in {"base", "engine", "catalogue", "docs", "finding", "parsing"}:
            continue
        module = importlib.import_module(f"rules.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Rule) and obj is not Rule and obj.ID and obj.__module__ == module.__name__:
                found[f"{obj.CODE}:{obj.__qualname__}"] = obj
    return tuple(found[k] for k in sorted(found))


def implemented_rule_ids() -> list[str]:
    """Rulebook IDs with at least one static rule."""
    return sorted({r.ID for r in discover_rules()})


def _dispatch_table(instances: list[Rule], failed: dict[str, str]) -> dict[str, list]:
    table: dict[str, list] = {}
    for rule in instances:
        for name in dir(type(rule)):
            if name.startswith(("visit_", "leave_")):
                table.setdefault(name, []).append(_guarded(rule, getattr(rule, name), failed))
    return table


def _guarded(rule: Rule, method, failed: dict[str, str]):
    """METHOD, which records its rule as failed instead of raising, and does nothing once its rule has failed."""
    def call(node: ast.AST) -> None:
        if rule.ID in failed:
            return
        try:
            method(node)
        except Exception as exc:  # noqa: BLE001 - one rule's crash is that rule's "not checked", never the others'
            failed[rule.ID] = _why(exc)
    return call


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _dispatch(facts: Facts, table: dict[str, list]) -> None:
    """Call visit_X on every X node in source order, reusing the preorder the facts graph already built (one
    traversal for facts and rules); rules with leave_X, or visiting context/operator singletons, get a full walk."""
    wanted: dict[type, list] = {}
    for name, methods in table.items():
        kind = getattr(ast, name[6:], None)
        if name.startswith("leave_") or not isinstance(kind, type) or kind in SKIPPED_TYPES:
            _walk(facts.tree, table)
            return
        wanted[kind] = methods
    if len(wanted) == 1:
        ((kind, methods),) = wanted.items()
        for node in facts.graph.of_type(kind):
            for method in methods:
                method(node)
        return
    for node in facts.graph.preorder:
        methods = wanted.get(type(node))
        if methods:
            for method in methods:
                method(node)


def _walk(tree: ast.AST, table: dict[str, list]) -> None:
    """One pre/post-order walk calling visit_X before and leave_X after the children of every X node."""
    visit_names = {k[6:] for k in table if k.startswith("visit_")}
    leave_names = {k[6:] for k in table if k.startswith("leave_")}
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, leaving = stack.pop()
        kind = type(node).__name__
        if leaving:
            for method in table[f"leave_{kind}"]:
                method(node)
            continue
        if kind in visit_names:
            for method in table[f"visit_{kind}"]:
                method(node)
        if kind in leave_names:
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(ast.iter_child_nodes(node))))


def analyse_unit(
    unit: UnitLike, log_hints: LogHints | None = None, rule_classes: Iterable[type[Rule]] | None = None
) -> EngineResult:
    """Run the rules over one unit; a syntax error becomes a problem, never an exception."""
    result = EngineResult()
    start = time.perf_counter()
    try:
        tree = getattr(unit, "tree", None) or parse_python(unit.text, unit.path)
    except Exception as exc:  # noqa: BLE001 - SyntaxError, ValueError, rules.parsing.SourceParseError: all one problem
        result.problems.append(f"{unit.path}: could not parse ({type(exc).__name__}: {exc})")
        return result
    classes = tuple(rule_classes or discover_rules())
    try:
        facts = Facts(tree, unit.text)
    except RecursionError as exc:
        result.problems.append(f"{unit.path}: analysis too deep ({exc})")
        return result
    except Exception as exc:  # noqa: BLE001 - the shared analysis failed: every rule is not checked, with the reason
        result.failed.update((cls.ID, f"the analysis core failed ({_why(exc)})") for cls in classes)
        return result
    context = RuleContext(unit.path, unit.text, tree, facts, log_hints or LogHints(), unit.origin)
    instances = [cls(context) for cls in classes]
    table = _dispatch_table(instances, result.failed)
    try:
        if table:  # rules that only read facts in finish() need no walk
            _dispatch(facts, table)
    except RecursionError as exc:
        result.problems.append(f"{unit.path}: analysis too deep ({exc})")
    for rule in instances:
        if rule.ID in result.failed:
            continue
        try:
            rule.finish()
        except RecursionError as exc:
            result.problems.append(f"{unit.path}: {rule.ID} could not finish ({exc})")
        except Exception as exc:  # noqa: BLE001 - this rule alone is not checked; every other finding stands
            result.failed[rule.ID] = _why(exc)
            continue
        result.findings.extend(rule.findings)
    result.findings = _dedupe(result.findings)
    result.seconds[unit.path] = time.perf_counter() - start
    return result


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple] = set()
    out = []
    for f in findings:
        key = (f.rule, f.file, f.line, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def analyse(
    units: Iterable[UnitLike], log_hints: LogHints | None = None, rule_classes: Iterable[type[Rule]] | None = None
) -> EngineResult:
    """Run the rules over every Python unit (entry point first) and merge the results."""
    total = EngineResult()
    classes = tuple(rule_classes) if rule_classes is not None else None
    for unit in units:
        part = analyse_unit(unit, log_hints, classes)
        total.findings.extend(part.findings)
        total.problems.extend(part.problems)
        for rule, why in part.failed.items():
            total.failed.setdefault(rule, f"{unit.path}: {why}")
        total.seconds.update(part.seconds)
    return total


def check_source(text: str, path: str = "train_gpt.py", log_hints: LogHints | None = None,
                 rule_classes: Iterable[type[Rule]] | None = None) -> EngineResult:
    """Convenience for one source string (tests, docs)."""
    return analyse([SourceUnit(path, text)], log_hints, rule_classes)

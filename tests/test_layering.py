"""The house layering rules: which package may import which (docs/architecture.md)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "rules": {"torch", "harness", "reference", "click"},
    "harness": {"reference", "click", "torch"},
    "reference": {"harness", "rules", "click"},
}
# Code injected into a submission's own process (probes) runs next to the submission's torch: exempt from "no torch".
EXEMPT_FROM_TORCH = ("harness/run/inject/",)


def _imported_roots(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add((node.module.split(".")[0], node.lineno))
    return roots


def _modules():
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            allowed = {"torch"} if rel.startswith(EXEMPT_FROM_TORCH) else set()
            yield pytest.param(path, forbidden - allowed, id=rel)


@pytest.mark.parametrize(("path", "forbidden"), list(_modules()))
def test_module_respects_layering(path, forbidden):
    """A module imports none of the packages its layer forbids."""
    bad = sorted((root, line) for root, line in _imported_roots(path) if root in forbidden)
    assert not bad, f"{path.name} imports forbidden packages: {bad}"


def test_only_cli_imports_click():
    """cli.py is the only module that imports click."""
    offenders = [p for p in ROOT.rglob("*.py")
                 if "tests" not in p.parts and ".git" not in p.parts and p.name != "cli.py"
                 and any(root == "click" for root, _ in _imported_roots(p))]
    assert offenders == []


# --- module graph ---------------------------------------------------------------------------------------------

PACKAGES = ("harness", "rules", "reference")
MAX_MODULE_LINES = 500


def _module_files() -> dict[str, Path]:
    """Dotted name -> file for every module of our packages and cli.py (package __init__ files included)."""
    out = {"cli": ROOT / "cli.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that NAME imports anywhere: top level, inside functions and under TYPE_CHECKING alike."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            # modules injected into the probed process import their siblings as top-level modules
            targets += [f"{package}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            if not node.level:  # modules injected into the probed process import siblings as top-level modules
                targets.append(f"{package}.{base}")
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not (modules[target].name == "__init__.py"
                                                     and modules[target].stat().st_size < 2000
                                                     and "import" not in modules[target].read_text()):
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_cycle():
    """The cycle finder reports a three-module loop and nothing for a chain."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    """No two of our modules import each other, directly or through others, even lazily or for typing only."""
    modules = _module_files()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("path", list(_module_files().values()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_is_short(path):
    """No module is longer than the house limit: a longer one is split along its sections."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def _guarded_own_imports(path: Path) -> list[int]:
    """Lines of `try: import <our module> ... except ImportError` in PATH."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Try):
            continue
        names = {n.id for h in node.handlers if h.type is not None for n in ast.walk(h.type) if isinstance(n, ast.Name)}
        if not names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}:
            continue
        for stmt in (s for b in node.body for s in ast.walk(b)):
            mods = ([a.name for a in stmt.names] if isinstance(stmt, ast.Import)
                    else [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
            if any(m.split(".")[0] in PACKAGES for m in mods) or (isinstance(stmt, ast.ImportFrom) and stmt.level):
                lines.append(stmt.lineno)
    return lines


def test_own_imports_are_never_guarded():
    """An import of our own module that fails fails loudly: no ImportError fallback around it."""
    offenders = {p.relative_to(ROOT).as_posix(): _guarded_own_imports(p)
                 for p in [*_module_files().values(), *(ROOT / "bench").glob("*.py")]}
    assert {k: v for k, v in offenders.items() if v} == {}


# The challenge's numbers live in harness/challenge.py; reference/ keeps its own copies (it is bundled into one
# submitted script), rules/ needs none.
CHALLENGE_LITERALS = (16_000_000, 20240520, 151_077_000, 62_021_632)


def test_challenge_constants_live_in_one_module():
    """No harness module other than harness/challenge.py writes the challenge's numbers as literals."""
    offenders = []
    for path in (ROOT / "harness").rglob("*.py"):
        if path.name == "challenge.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in CHALLENGE_LITERALS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_architecture_doc_names_every_module():
    """docs/architecture.md names every module of harness/ and rules/ by its path."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [p.relative_to(ROOT).as_posix() for package in ("harness", "rules")
               for p in sorted((ROOT / package).rglob("*.py"))
               if p.name != "__init__.py" and p.relative_to(ROOT).as_posix() not in doc]
    assert missing == []


# Which rooms of harness/ a room may not import (docs/architecture.md, "Imports run downward").
ROOMS = ("harness.submission", "harness.check", "harness.run", "harness.report", "harness.ci", "harness.audit")
ROOM_FORBIDDEN = {
    "harness.challenge": ROOMS, "harness.errors": ROOMS, "harness.verdict": ROOMS,
    "harness.submission": ("harness.check", "harness.run", "harness.report", "harness.ci", "harness.audit"),
    "harness.check": ("harness.run", "harness.report", "harness.ci", "harness.audit"),
    "harness.run": ("harness.report", "harness.ci", "harness.check.pipeline", "harness.audit"),
    "harness.report": ("harness.ci", "harness.audit"),
    "harness.ci": ("harness.audit",),
}
# `check --probe` runs the probe; `reproduce` runs the folder's `check` before its seeds.
ROOM_EXCEPTIONS = {("harness.check.pipeline", "harness.run.probe"), ("harness.run.reproduce", "harness.check.pipeline")}


def _room(name: str) -> str | None:
    return next((room for room in sorted(ROOM_FORBIDDEN, key=len, reverse=True)
                 if name == room or name.startswith(room + ".")), None)


def test_rooms_import_downward():
    """No room of harness/ imports a room above it (report and ci format; check and run never do)."""
    modules = _module_files()
    bad = []
    for name, path in modules.items():
        room = _room(name)
        for target in _imports(name, path, modules) if room else ():
            if (name, target) in ROOM_EXCEPTIONS:
                continue
            if any(target == f or target.startswith(f + ".") for f in ROOM_FORBIDDEN[room]):
                bad.append(f"{name} -> {target}")
    assert bad == []


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "bench").glob("*.py") if p.name != "__init__.py"),
                         ids=lambda p: p.name)
def test_bench_script_imports(path):
    """Every benchmark script imports: a name moved or renamed in harness/ breaks here, not at the bench's next run."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    importlib.import_module(f"bench.{path.stem}")

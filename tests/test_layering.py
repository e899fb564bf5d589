"""The house layering rules: which package may import which (docs/architecture.md)."""

from __future__ import annotations

import ast
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

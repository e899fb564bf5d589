"""Fixtures for the static-rule tests: every rule's VALID/INVALID cases as parameters, and a helper to run them."""

from __future__ import annotations

import pytest

from rules.base import Invalid, Valid
from rules.engine import check_source, discover_rules


def rule_cases(kind: str) -> list:
    """(rule class, case) pairs for every VALID or INVALID example of every discovered rule, with readable ids."""
    out = []
    for cls in discover_rules():
        for i, case in enumerate(getattr(cls, kind)):
            out.append(pytest.param(cls, case, id=f"{cls.ID}-{case.name or i}"))
    return out


def hits(cls, case: Valid | Invalid, text: str | None = None):
    """Violations of CLS's rule ID when all rules run over the case (or over TEXT instead of its code)."""
    result = check_source(case.code if text is None else text, log_hints=case.log_hints)
    assert not result.problems, result.problems
    return [v for v in result.findings if v.rule == cls.ID]

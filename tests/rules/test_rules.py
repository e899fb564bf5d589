"""Every rule's own VALID and INVALID examples, run through the full engine with all rules enabled."""

from __future__ import annotations

import pytest

from rules.catalogue import RULES
from rules.engine import discover_rules
from tests.rules.conftest import hits, rule_cases


@pytest.mark.parametrize("cls, case", rule_cases("VALID"))
def test_valid_case_is_not_flagged(cls, case):
    """A VALID example (including the near-misses) produces no finding of that rule."""
    assert hits(cls, case) == []


@pytest.mark.parametrize("cls, case", rule_cases("INVALID"))
def test_invalid_case_is_flagged_where_expected(cls, case):
    """An INVALID example produces a finding of that rule, on the expected line and severity when given."""
    found = hits(cls, case)
    assert found, f"{cls.ID} did not flag {case.name!r}"
    if case.expected_line is not None:
        assert case.expected_line in {v.line for v in found}
    if case.expected_severity is not None:
        matching = [v for v in found if case.expected_line in (None, v.line)]
        assert case.expected_severity in {v.severity for v in matching}


@pytest.mark.parametrize("cls", discover_rules(), ids=lambda c: c.__name__)
def test_rule_class_is_documented_and_catalogued(cls):
    """Each rule names a catalogue ID, a code, a message, three docstring parts and at least one example each way."""
    assert cls.ID in RULES and cls.CODE and cls.MESSAGE
    assert len([p for p in (cls.__doc__ or "").split("\n\n") if p.strip()]) >= 3
    assert cls.VALID and cls.INVALID


def test_rule_codes_are_unique():
    """No two rule classes share a CODE."""
    codes = [cls.CODE for cls in discover_rules()]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)

"""Generated documentation stays in step with the code it is generated from."""

from __future__ import annotations

from pathlib import Path

from harness.report.coverage import render_rules

ROOT = Path(__file__).resolve().parent.parent


def test_rules_doc_is_current():
    """docs/rules.md equals what `python cli.py rules --format docs` prints now."""
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == render_rules("docs") + "\n"


def test_every_rule_has_docstring_parts_and_examples():
    """Every static rule documents what it flags, why, and what to write instead, with two VALID and INVALID cases."""
    from rules.engine import discover_rules

    for cls in discover_rules():
        doc = (cls.__doc__ or "").lower()
        assert len(cls.VALID) >= 2 and len(cls.INVALID) >= 2, cls.__name__
        assert cls.MESSAGE, cls.__name__
        assert len(doc) > 200, f"{cls.__name__}: docstring too thin"

"""Render the static rules' documentation (markdown) from the rule classes themselves: never written twice.

`render_rules_markdown()` returns the text the lead's command writes to docs/rules.md: per rulebook ID, each rule's
code, message, docstring (what it flags / why / what to write instead) and its first VALID and INVALID examples.
"""

from __future__ import annotations

import inspect

from rules.catalogue import RULES
from rules.engine import discover_rules


def _example(title: str, code: str) -> list[str]:
    return [f"*{title}*", "", "```python", code.rstrip(), "```", ""]


def render_rule(cls) -> str:
    """Markdown for one rule class."""
    spec = RULES[cls.ID]
    lines = [f"### {cls.CODE} `{cls.ID}`: {cls.__name__}", "",
             f"**{cls.MESSAGE}** Default severity: {spec.severity}; ruling strength: {spec.strength} "
             f"({spec.source}).", ""]
    lines += [inspect.cleandoc(cls.__doc__ or "").strip(), ""]
    if cls.VALID:
        case = cls.VALID[0]
        lines += _example(f"Not flagged{': ' + case.name if case.name else ''}", case.code)
    if cls.INVALID:
        case = cls.INVALID[0]
        where = f" (line {case.expected_line})" if case.expected_line else ""
        lines += _example(f"Flagged{where}{': ' + case.name if case.name else ''}", case.code)
    return "\n".join(lines)


def render_rules_markdown() -> str:
    """The whole docs/rules.md text, rules grouped by rulebook ID in catalogue order."""
    by_id: dict[str, list] = {}
    for cls in discover_rules():
        by_id.setdefault(cls.ID, []).append(cls)
    out = ["# Static rules", "",
           "Generated from the rule classes in `rules/` (docstrings, messages, first examples); do not edit.", ""]
    for rule_id, spec in RULES.items():
        if rule_id not in by_id:
            continue
        out += [f"## {rule_id}", "", spec.summary, ""]
        out += [render_rule(cls) for cls in by_id[rule_id]]
    return "\n".join(out).rstrip() + "\n"

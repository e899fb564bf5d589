"""What every check returns: findings (rules.finding.Finding) with evidence, the rules it could not check, and the
overall verdict.

The JSON contract other tools depend on is built here (`Report.to_dict`): an object with "verdict" ("pass" |
"fail" | "error") and "findings", each with "rule", "severity", "file", "line" and "message"; more fields follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from rules.catalogue import RULES
from rules.finding import SEVERITIES, Finding

EXIT_PASS, EXIT_FINDINGS, EXIT_COULD_NOT_CHECK = 0, 1, 2
VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FINDINGS, "error": EXIT_COULD_NOT_CHECK}


def worst_exit_code(codes: Iterable[int]) -> int:
    """The exit code of several verdicts together: error findings anywhere decide (1), else anything that could
    not be checked (2), else pass (0)."""
    codes = set(codes)
    if EXIT_FINDINGS in codes:
        return EXIT_FINDINGS
    return EXIT_COULD_NOT_CHECK if EXIT_COULD_NOT_CHECK in codes else EXIT_PASS


@dataclass(frozen=True)
class NotChecked:
    """A rule that this run did not judge, and why: never reported as passing."""

    rule: str
    reason: str


@runtime_checkable
class Fact(Protocol):
    """A typed stage fact (e.g. harness.check.significance.Significance): renderers read its fields, the JSON
    contract holds its to_dict()."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AllowedFinding:
    """A finding that a reviewer's allow-list moved out of the verdict, with the reviewer's reason."""

    finding: Finding
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.finding.to_dict(), "allowed_reason": self.reason}


@dataclass
class Report:
    target: str
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    # Reasons the target as a whole could not be judged (no script, unreadable folder): forces exit 2 unless an
    # error finding already decides the verdict.
    could_not_check: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # rule IDs that were actually evaluated
    # What the stages measured, for the reader (per-seed tables, sizes, claims vs logs, statistics): plain JSON
    # values or typed Facts; rendered as tables, and the "facts" object of the JSON contract together with the
    # typed fields below.
    facts: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage (or "static rules: <unit>") -> wall time
    judged_by: dict[str, list[str]] = field(default_factory=dict)  # rule ID -> how it was judged (code, logs, ...)
    allowed: list[AllowedFinding] = field(default_factory=list)
    analysis_problems: list[str] = field(default_factory=list)  # units or rules the static analysis could not finish

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def downgrade(self, which: Callable[[Finding], bool], note: str) -> None:
        """Turn every error finding WHICH selects into a warning, NOTE (the evidence that lowers it) appended."""
        self.findings = [replace(f, severity="warning", message=f.message + note)
                         if f.severity == "error" and which(f) else f for f in self.findings]

    def skip(self, rule: str, reason: str) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown rule ID {rule!r}")
        if all(n.rule != rule for n in self.not_checked):
            self.not_checked.append(NotChecked(rule, reason))

    def mark_checked(self, *rules: str) -> None:
        for rule in rules:
            if rule not in RULES:
                raise ValueError(f"unknown rule ID {rule!r}")
            if rule not in self.checked:
                self.checked.append(rule)

    def merge(self, other: "Report", stage: str) -> None:
        """Fold another report (a probe run, a re-run) into this one; its facts go under facts[stage]."""
        self.findings.extend(other.findings)
        for rule in other.checked:
            self.mark_checked(rule)
        for item in other.not_checked:
            if item.rule not in self.checked:
                self.skip(item.rule, f"{stage}: {item.reason}")
        self.could_not_check.extend(f"{stage}: {reason}" for reason in other.could_not_check)
        self.facts[stage] = other.all_facts()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def verdict(self) -> str:
        """'fail' when an error finding exists, else 'error' when something could not be checked, else 'pass'."""
        if self.errors:
            return "fail"
        if self.could_not_check:
            return "error"
        return "pass"

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def sorted_findings(self) -> list[Finding]:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: (order[f.severity], f.rule, f.file or "", f.line or 0))

    def all_facts(self) -> dict[str, Any]:
        """The "facts" object of the JSON contract: the stage facts (typed ones as their to_dict()) and the typed
        fields that are set."""
        plain = {k: v.to_dict() if isinstance(v, Fact) else v for k, v in self.facts.items()}
        typed = {"timings_ms": dict(self.timings_ms), "judged_by": {k: list(v) for k, v in self.judged_by.items()},
                 "allowed": [a.to_dict() for a in self.allowed], "static_rule_problems": list(self.analysis_problems)}
        return {**plain, **{k: v for k, v in typed.items() if v}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "target": self.target,
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "not_checked": [asdict(n) for n in self.not_checked],
            "could_not_check": list(self.could_not_check),
            "checked": list(self.checked),
            "facts": self.all_facts(),
        }

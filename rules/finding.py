"""The one record of a finding, from the rule that produces it to the renderer that prints it.

Static rules (rules/) create it through ``Rule.report``; every harness stage (logs, sizes, budgets, the probe,
re-runs) creates it directly; ``harness.verdict.Report`` collects it. It lives here, beside the catalogue of rule
IDs it is checked against, because rules/ may not import harness/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rules.catalogue import RULES

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Evidence:
    """One supporting location: where validation data came from, where an update happens, where a score is kept."""

    file: str | None
    line: int | None
    note: str


@dataclass(frozen=True)
class Finding:
    rule: str  # a rulebook ID (rules.catalogue.RULES)
    severity: str  # "error" | "warning" | "info"
    message: str
    file: str | None = None  # relative to the submission folder, forward slashes (decoded code: the shipped name)
    line: int | None = None
    evidence: tuple[Evidence, ...] = ()
    seed: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the figures behind the message
    source: str = "static"  # "static" (code), "log", "artifact", "runtime" (probe or re-run)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule ID {self.rule!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = [asdict(e) for e in self.evidence]
        return out

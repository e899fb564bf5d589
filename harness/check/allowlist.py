"""Reviewer allow-lists: the only way to silence a finding, each entry with a reason that the report shows.

Submitters cannot silence anything: comments in the submission are never read for suppressions. A reviewer passes
`--allow FILE` (TOML or JSON) with entries like

    [[allow]]
    rule = "TTT-WARMUP-ON-VAL"
    file = "train_gpt.py"      # optional: only findings in this file
    line = 2741                # optional: only the finding at this line
    reason = "warm-up state is discarded; accepted in the PR #1530 thread"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tomllib

from harness.errors import UserError
from harness.verdict import AllowedFinding, Report
from rules.catalogue import RULES
from rules.finding import Finding


@dataclass(frozen=True)
class AllowEntry:
    rule: str
    reason: str
    file: str | None = None
    line: int | None = None

    def matches(self, finding: Finding) -> bool:
        return (finding.rule == self.rule
                and (self.file is None or finding.file == self.file)
                and (self.line is None or finding.line == self.line))


def _entry(raw: object, where: str) -> AllowEntry:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: each allow entry must be a table/object")
    rule, reason = raw.get("rule"), raw.get("reason")
    if rule not in RULES:
        raise UserError(f"{where}: unknown rule ID {rule!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise UserError(f"{where}: entry for {rule} needs a non-empty reason")
    line = raw.get("line")
    if line is not None and not isinstance(line, int):
        raise UserError(f"{where}: line must be an integer")
    file = raw.get("file")
    if file is not None and not isinstance(file, str):
        raise UserError(f"{where}: file must be a string")
    return AllowEntry(rule=rule, reason=reason.strip(), file=file, line=line)


def load_allow_list(path: Path | None) -> list[AllowEntry]:
    """Read an allow-list file; a malformed one is a one-line UserError, never silently ignored."""
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read allow-list ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not valid {'JSON' if Path(path).suffix == '.json' else 'TOML'} ({exc})") from None
    entries = data.get("allow", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UserError(f"{path}: expected a list of allow entries under 'allow'")
    return [_entry(raw, f"{path} entry {i + 1}") for i, raw in enumerate(entries)]


def apply_allow_list(report: Report, entries: list[AllowEntry]) -> None:
    """Move allowed findings out of the verdict into report.allowed, each with its reviewer reason."""
    if not entries:
        return
    kept = []
    for finding in report.findings:
        entry = next((e for e in entries if e.matches(finding)), None)
        if entry is None:
            kept.append(finding)
        else:
            report.allowed.append(AllowedFinding(finding, entry.reason))
    report.findings = kept

"""Adapter from the static rules (rules/) to findings: run the engine over every Python unit of the CodeBundle.

rules/ cannot import harness/, so the engine returns plain Violations; here they become Findings on the shipped
file (decoded code keeps the shipped file name and the decoded line, and says "decoded"). Reviewer allow-list
entries move matching findings into report.facts["allowed"] with their reason; submissions cannot suppress anything.
"""

from __future__ import annotations

from typing import Any, Iterable

from harness.verdict import Report
from rules.base import LogHints, Violation
from rules.engine import analyse_unit, implemented_rule_ids
from rules.finding import Evidence, Finding


def log_hints_from(logs: Iterable[Any]) -> LogHints:
    """Tags seen and hyperparameters printed, merged over every run log (harness.submission.logs.LogRun)."""
    tags: set[str] = set()
    hyper: dict[str, str] = {}
    for run in logs or []:
        tags |= set(getattr(run, "tags", None) or ())
        for key, value in (getattr(run, "hyperparameters", None) or {}).items():
            hyper.setdefault(str(key), str(value))
    return LogHints(frozenset(tags), hyper)


def to_finding(violation: Violation, origin: str) -> Finding:
    """One Violation as a Finding; evidence lines point into the same (possibly decoded) unit."""
    decoded = origin == "decoded"
    message = violation.message + (" (in the decoded code of the self-extracting script)" if decoded else "")
    evidence = tuple(
        Evidence(violation.path, line or None, note + (" (decoded line)" if decoded else ""))
        for line, note in violation.evidence
    )
    return Finding(rule=violation.rule, severity=violation.severity, message=message, file=violation.path,
                   line=violation.line, evidence=evidence, data={**violation.data, "code": violation.code,
                                                                  "origin": origin}, source="static")


def _allowed_by(finding: Finding, allow: Iterable[Any]) -> str | None:
    for entry in allow or []:
        get = entry.get if isinstance(entry, dict) else lambda k, e=entry: getattr(e, k, None)
        if get("rule") != finding.rule:
            continue
        if get("file") not in (None, finding.file) or get("line") not in (None, finding.line):
            continue
        return str(get("reason"))
    return None


def run_static_rules(code: Any, logs: Iterable[Any], allow: Iterable[Any], report: Report) -> None:
    """Run every static rule over every Python unit of CODE (a harness.submission.code.CodeBundle) into REPORT."""
    hints = log_hints_from(logs)
    timings: dict[str, float] = {}
    for unit in getattr(code, "units", []) or []:
        result = analyse_unit(unit, hints)
        for problem in result.problems:
            report.facts.setdefault("static_rule_problems", []).append(problem)
        for seconds_key, seconds in result.seconds.items():
            timings[f"{seconds_key} ({unit.origin})"] = round(seconds, 4)
        for violation in result.violations:
            finding = to_finding(violation, unit.origin)
            reason = _allowed_by(finding, allow)
            if reason is None:
                report.add(finding)
            else:
                report.facts.setdefault("allowed", []).append({**finding.to_dict(), "allowed_reason": reason})
    report.facts.setdefault("timings", {})["static_rules"] = timings
    report.mark_checked(*implemented_rule_ids())


# Files that are not Python but still say what runs: compiled C/C++ helpers, and shell commands in the README or in
# shipped scripts (how the run was launched, e.g. a validation shard linked in as a training shard, PR #44).
SHELL_SUFFIXES = (".sh", ".bash")
MAX_SCAN_BYTES = 2_000_000  # larger text files are not read: a README or a helper is far smaller


def _read_text(path) -> str | None:
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def run_text_scans(sub: Any, code: Any, report: Report) -> None:
    """Scan native sources (NGRAM-GATE-ON-TARGET) and launch instructions (TRAIN-ON-VAL) that the AST rules miss."""
    from rules.ngram_gate_on_target import scan_native
    from rules.train_on_val import scan_text

    for rel in getattr(code, "native_sources", []) or []:
        text = _read_text(sub.abs(rel))
        for line, note in scan_native(rel, text) if text is not None else []:
            report.add(Finding("NGRAM-GATE-ON-TARGET", "warning",
                               f"per-position loop in compiled code gates a hint on the token being predicted: {note}",
                               file=rel, line=line, source="static"))
    launchers = [f for f in getattr(sub, "files", []) if f.name == "README.md" or f.suffix in SHELL_SUFFIXES]
    for rel in launchers:
        text = _read_text(sub.abs(rel))
        for line, note in scan_text(rel.as_posix(), text) if text is not None else []:
            report.add(Finding("TRAIN-ON-VAL", "error", f"training reads validation data: {note}",
                               file=rel.as_posix(), line=line, source="static"))

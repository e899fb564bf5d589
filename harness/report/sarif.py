"""A Report as SARIF 2.1.0 (GitHub code scanning): one run, a rule entry for every ID with a finding, results with
stable fingerprints; rules that were not checked become tool notifications, never results.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.report.contract import json_safe
from harness.verdict import Report
from rules.catalogue import RULES
from rules.finding import Finding

TOOL_NAME = "pgolf-harness"
TOOL_URI = "https://github.com/openai/parameter-golf"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _tool_version() -> str:
    from importlib import metadata  # only SARIF needs it: ~15 ms of imports otherwise spent on every check

    try:
        return metadata.version(TOOL_NAME)
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0+local"


def _rule_name(rule_id: str) -> str:
    """A rule ID as an identifier-style name: ARTIFACT-CAP-16MB -> ArtifactCap16mb."""
    return "".join(part.capitalize() for part in rule_id.split("-"))


def _sarif_rule(rule_id: str) -> dict[str, Any]:
    spec = RULES[rule_id]
    ruling = f"Ruling: {spec.source} (strength: {spec.strength}; family {spec.family})."
    return {
        "id": rule_id, "name": _rule_name(rule_id),
        "shortDescription": {"text": spec.summary},
        "fullDescription": {"text": f"{spec.summary} {ruling}"},
        "defaultConfiguration": {"level": SARIF_LEVEL.get(spec.severity, "warning")},
        "help": {"text": f"{spec.summary}\n{ruling}", "markdown": f"**{rule_id}**: {spec.summary}\n\n{ruling}"},
        "properties": {"tags": ["parameter-golf", f"family-{spec.family}"], "strength": spec.strength},
    }


def _uri(uri_base: str | None, file: str | None) -> str:
    """uri_base + file with forward slashes; a finding without a file points at the folder itself."""
    base = (uri_base or "").replace("\\", "/")
    if file is None:
        return base.rstrip("/") or "."
    if base and not base.endswith("/"):
        base += "/"
    return base + file.replace("\\", "/").lstrip("/")


def _physical(uri_base: str | None, file: str | None, line: int | None) -> dict[str, Any]:
    loc: dict[str, Any] = {"artifactLocation": {"uri": _uri(uri_base, file)}}
    if file is not None and line is not None and line >= 1:
        loc["region"] = {"startLine": int(line)}
    return loc


def _fingerprint(f: Finding) -> str:
    """Stable across runs on the same submission: rule, place and message, not the order of findings."""
    key = "\x1f".join([f.rule, f.file or "", str(f.line or 0), f.seed or "", f.message])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _sarif_result(f: Finding, rule_index: int, uri_base: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule, "ruleIndex": rule_index, "level": SARIF_LEVEL[f.severity],
        "message": {"text": f.message + (f" (seed {f.seed})" if f.seed else "")},
        "locations": [{"physicalLocation": _physical(uri_base, f.file, f.line)}],
        "partialFingerprints": {"pgolfFinding/v1": _fingerprint(f)},
        "properties": {"source": f.source},
    }
    related = [{"id": i, "physicalLocation": _physical(uri_base, e.file, e.line), "message": {"text": e.note}}
               for i, e in enumerate(f.evidence) if e.file is not None]
    if related:
        result["relatedLocations"] = related
    unplaced = [e.note for e in f.evidence if e.file is None]
    if unplaced:
        result["properties"]["evidence"] = unplaced
    if f.data:
        result["properties"]["data"] = json_safe(f.data)
    return result


def _notifications(report: Report) -> list[dict[str, Any]]:
    """'Not checked' rules and whole-target problems as tool notifications: visible, never a passing result."""
    notes = [{"level": "note", "message": {"text": f"not checked: {n.rule}: {n.reason}"},
              "associatedRule": {"id": n.rule}} for n in report.not_checked]
    notes += [{"level": "error", "message": {"text": f"could not check: {r}"}} for r in report.could_not_check]
    return notes


def sarif_dict(report: Report, *, uri_base: str | None = None) -> dict[str, Any]:
    """The SARIF 2.1.0 log as a dict: one run, rules for every ID that has a finding."""
    findings = report.sorted_findings()
    rule_ids = sorted({f.rule for f in findings})
    index = {r: i for i, r in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {"driver": {"name": TOOL_NAME, "informationUri": TOOL_URI, "version": _tool_version(),
                            "rules": [_sarif_rule(r) for r in rule_ids]}},
        "invocations": [{"executionSuccessful": report.verdict != "error",
                         "toolExecutionNotifications": _notifications(report)}],
        "results": [_sarif_result(f, index[f.rule], uri_base) for f in findings],
        "properties": {"verdict": report.verdict, "exitCode": report.exit_code, "target": report.target,
                       "checked": list(report.checked),
                       "notChecked": [{"rule": n.rule, "reason": n.reason} for n in report.not_checked],
                       "couldNotCheck": list(report.could_not_check)},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render_sarif(report: Report, *, uri_base: str | None = None) -> str:
    """SARIF 2.1.0 for GitHub code scanning (upload-sarif)."""
    return json.dumps(sarif_dict(report, uri_base=uri_base), indent=2, allow_nan=False) + "\n"

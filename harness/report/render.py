"""Render a Report as human text, the JSON contract, SARIF 2.1.0 (GitHub code scanning) or a Markdown PR comment.

Every format says the verdict first and lists the rules that were *not* checked explicitly: a rule that did not run
is never shown as passing (in SARIF it becomes a tool notification, never a result).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.verdict import Report
from rules.catalogue import RULES
from rules.finding import SEVERITIES, Finding

FORMATS = ("text", "json", "sarif", "markdown")
TOOL_NAME = "pgolf-harness"
TOOL_URI = "https://github.com/openai/parameter-golf"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
ANSI = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m", "pass": "\033[32m", "fail": "\033[31m",
        "reset": "\033[0m"}
SIGNIFICANCE_KEY = "significance"
SEVERITY_HEADINGS = {"error": "errors", "warning": "warnings", "info": "info"}


def render(report: Report, fmt: str, *, uri_base: str | None = None, color: bool = False) -> str:
    """The report in FMT (text/json/sarif/markdown); uri_base prefixes SARIF file URIs (the folder in the repo)."""
    if fmt == "text":
        return render_text(report, color=color)
    if fmt == "json":
        return render_json(report)
    if fmt == "sarif":
        return render_sarif(report, uri_base=uri_base)
    if fmt == "markdown":
        return render_markdown(report)
    raise UserError(f"unknown report format {fmt!r} (expected one of {', '.join(FORMATS)})")


# --- shared helpers -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells, shared by the text and Markdown renderers."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: tuple[str, ...] = ()  # printed under the table
    primary: bool = True  # False: supporting detail (collapsed in the Markdown comment)


def _cell(value: Any) -> str:
    """One value as a table cell: 8 significant digits for floats, thousands separators for large ints."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, (list, tuple, dict, set)) and not value:
        return "—"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_json_safe(value), sort_keys=True)
    return str(value)


def _where(file: str | None, line: int | None) -> str:
    if file is None:
        return "—"
    return f"{file}:{line}" if line is not None else file


def _counts(report: Report) -> dict[str, int]:
    return {s: sum(f.severity == s for f in report.findings) for s in SEVERITIES}


def _headline_counts(report: Report) -> str:
    c = _counts(report)
    return (f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info; {len(report.checked)} rule(s) "
            f"checked, {len(report.not_checked)} not checked")


# --- facts as tables ----------------------------------------------------------------------------------------------

def _is_table(value: Any) -> bool:
    """A list of dicts or a dict of dicts: shapes that read best as their own table."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, dict) for v in value)
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def _generic_tables(title: str, value: Any, primary: bool, depth: int = 0) -> list[Table]:
    """A fact as tables: list of dicts, dict of dicts, or a dict of scalars whose nested tables follow it."""
    if isinstance(value, list) and _is_table(value):
        cols = _columns(value)
        return [Table(title, cols, [[_cell(r.get(c)) for c in cols] for r in value], primary=primary)]
    if isinstance(value, dict) and _is_table(value):
        cols = _columns(list(value.values()))
        return [Table(title, ["", *cols], [[str(k), *[_cell(r.get(c)) for c in cols]] for k, r in value.items()],
                      primary=primary)]
    if isinstance(value, dict) and value:
        nested = {k: v for k, v in value.items() if depth < 2 and _is_table(v)}
        flat = [[str(k), _cell(v)] for k, v in value.items() if k not in nested]
        tables = [Table(title, ["", "value"], flat, primary=primary)] if flat else []
        for key, sub in nested.items():
            tables += _generic_tables(f"{title}: {key}", sub, primary, depth + 1)
        return tables
    if isinstance(value, list) and value:
        return [Table(title, ["value"], [[_cell(v)] for v in value], primary=primary)]
    if value not in (None, {}, [], ""):
        return [Table(title, ["value"], [[_cell(value)]], primary=primary)]
    return []


def _fact_order(key: str) -> tuple[int, str]:
    """Per-seed tables first, then sizes, then anything else (alphabetically)."""
    k = key.lower()
    return (0 if "seed" in k else 1 if "size" in k or "byte" in k else 2, k)


def fact_tables(facts: dict[str, Any]) -> list[Table]:
    """Every fact except the statistics, in reading order: per-seed and sizes (primary), then the others."""
    tables = []
    for key in sorted((k for k in facts if k != SIGNIFICANCE_KEY), key=_fact_order):
        tables += _generic_tables(key.replace("_", " "), facts[key], primary=_fact_order(key)[0] < 2)
    return tables


def _mean_sd(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "—"
    sd = "sd ?" if summary.get("sd") is None else f"± {summary['sd']:.5f}"
    return f"{summary['mean']:.5f} {sd} (n={summary['n']})"


def _result_word(passes: bool | None) -> str:
    return "not testable" if passes is None else ("pass" if passes else "FAIL")


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _stat_row(policy: str, unit: str, test: dict[str, Any], margin: str, alpha: float,
              summaries: dict[str, Any], needed: dict[str, Any] | None) -> list[str]:
    """One row of the statistics table: one policy's test in one unit."""
    seeds = "—" if needed is None else f"{_cell(needed.get('power'))} / {_cell(needed.get('observed'))}"
    return [policy, unit, test.get("method") or "—", margin, f"< {alpha:g}", _mean_sd(summaries.get("candidate")),
            _mean_sd(summaries.get("reference")), _num(test.get("t"), ".3f"), _num(test.get("df"), ".2f"),
            _num(test.get("p"), ".4g"), _result_word(test.get("passes")), seeds]


def significance_tables(sig: dict[str, Any]) -> list[Table]:
    """The statistics table (both policies, bpb and nats) and the per-seed values both sides were tested on."""
    rows = []
    ratio = sig.get("bpb_per_nat", {}).get("candidate")
    for name, res in sig.get("policies", {}).items():
        label = name + (" (selected)" if name == sig.get("policy") else "")
        nats_margin = f"{res['delta_nats']:g} nats" if res["delta_nats"] else "none"
        bpb_margin = f"{nats_margin} = {_num(res.get('delta_bpb'), '.5f')} bpb" if res["delta_nats"] else "none"
        rows.append(_stat_row(label, "bpb", res, bpb_margin, res["alpha"], sig.get("summary_bpb", {}),
                              res.get("seeds_needed") or {}))
        nats = res.get("nats_test")
        if nats:
            unit = "nats" if nats.get("comparable", True) else "nats (not comparable)"
            rows.append(_stat_row(label, unit, nats, nats_margin, res["alpha"], sig.get("summary_nats", {}), None))
    ratio_text = "unknown" if ratio is None else f"{ratio:.4f} bpb per nat"
    stats_table = Table(f"statistics (one-sided, H0: candidate >= reference - margin; margin conversion "
                        f"{ratio_text}, {sig.get('bpb_per_nat', {}).get('source', '')})",
                        ["policy", "unit", "test", "margin", "alpha", "candidate mean", "reference mean", "t", "df",
                         "p", "result", "seeds needed (80% power / observed effect)"], rows)
    seed_rows = [[side, str(v.get("seed") or "—"), _num(v.get("val_loss"), ".8f"), _num(v.get("val_bpb"), ".8f"),
                  sig[side].get("source", "")]
                 for side in ("candidate", "reference") for v in sig.get(side, {}).get("values", [])]
    seeds_table = Table("per-seed values tested", ["side", "seed", "val_loss (nats)", "val_bpb", "source"],
                        seed_rows, notes=tuple(_significance_notes(sig)))
    return [stats_table, seeds_table]


def _significance_notes(sig: dict[str, Any]) -> list[str]:
    notes = list(sig.get("notes", []))
    for side in ("candidate", "reference"):
        notes += [f"{side}: {n}" for n in sig.get(side, {}).get("notes", [])]
    for name, res in sig.get("policies", {}).items():
        if res.get("note"):
            notes.append(f"{name}: {res['note']}")
    return notes


def all_tables(report: Report) -> list[Table]:
    """Statistics tables first (when present), then per-seed, sizes and the other facts."""
    sig = report.facts.get(SIGNIFICANCE_KEY)
    stats_tables = significance_tables(sig) if isinstance(sig, dict) and "policies" in sig else []
    return stats_tables + fact_tables(report.facts)


# --- text ---------------------------------------------------------------------------------------------------------

def _text_table(table: Table) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
              for i, c in enumerate(table.columns)]
    line = lambda cells: "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [table.title, line(table.columns), line(["-" * w for w in widths]), *(line(r) for r in table.rows),
            *(f"  note: {n}" for n in table.notes)]


def render_text(report: Report, *, color: bool = False) -> str:
    """Human report: verdict first, findings by severity with evidence, tables, then what was not checked."""
    paint = (lambda key, s: f"{ANSI[key]}{s}{ANSI['reset']}") if color else (lambda key, s: s)
    verdict = report.verdict
    out = [paint(verdict if verdict in ANSI else "warning", f"{verdict.upper()}") + f": {report.target} "
           f"(exit {report.exit_code})", _headline_counts(report)]
    for severity in SEVERITIES:
        group = [f for f in report.sorted_findings() if f.severity == severity]
        if not group:
            continue
        out += ["", paint(severity, f"{SEVERITY_HEADINGS[severity]} ({len(group)})")]
        for f in group:
            seed = f" [seed {f.seed}]" if f.seed else ""
            out.append(f"  {f.rule}  {_where(f.file, f.line)}{seed}")
            out.append(f"      {f.message}")
            out += [f"      - {_where(e.file, e.line)}: {e.note}" for e in f.evidence]
    for table in all_tables(report):
        out += ["", *_text_table(table)]
    out += ["", "not checked"] + ([f"  - {n.rule}: {n.reason}" for n in report.not_checked] or ["  (none)"])
    out += ["", "could not check"] + ([f"  - {r}" for r in report.could_not_check] or ["  (none)"])
    return "\n".join(out) + "\n"


# --- json ---------------------------------------------------------------------------------------------------------

def _json_safe(value: Any) -> Any:
    """Plain JSON: dict keys sorted, tuples/sets as lists, non-finite floats as strings, other objects as str."""
    if isinstance(value, dict):
        return {str(k): _json_safe(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_json_safe(v) for v in value), key=str)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def render_json(report: Report) -> str:
    """report.to_dict() as JSON: top-level keys in contract order, nested keys sorted, indent 2."""
    data = {k: _json_safe(v) for k, v in report.to_dict().items()}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


# --- sarif --------------------------------------------------------------------------------------------------------

def _tool_version() -> str:
    from importlib import (
        metadata,  # only SARIF needs it: ~15 ms of imports otherwise spent on every check
    )

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
        result["properties"]["data"] = _json_safe(f.data)
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


# --- markdown -----------------------------------------------------------------------------------------------------

def _md(text: Any) -> str:
    """A table cell: pipes escaped, newlines as <br>."""
    return str(text).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _md_table(table: Table, level: str = "###") -> list[str]:
    return [f"{level} {_md(table.title)}", "", "| " + " | ".join(_md(c) for c in table.columns) + " |",
            "|" + "---|" * len(table.columns), *("| " + " | ".join(_md(c) for c in r) + " |" for r in table.rows), "",
            *(f"- {n}" for n in table.notes), *([""] if table.notes else [])]


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def render_markdown(report: Report) -> str:
    """A compact GitHub-flavoured PR comment: verdict, findings with evidence, tables, what was not checked."""
    icon = {"pass": "✅", "fail": "❌", "error": "⚠️"}[report.verdict]
    out = [f"## {icon} Parameter Golf compliance: **{report.verdict.upper()}** for {_code(report.target)}", "",
           f"{_headline_counts(report)} (exit {report.exit_code}).", ""]
    findings = report.sorted_findings()
    if findings:
        out += ["| Rule | Severity | Location | Message |", "|---|---|---|---|"]
        out += [f"| {_code(f.rule)} | {f.severity} | {_md(_code(_where(f.file, f.line)))} | "
                f"{_md(f.message + (f' (seed {f.seed})' if f.seed else ''))} |" for f in findings]
        out.append("")
        with_evidence = [f for f in findings if f.evidence]
        if with_evidence:
            out += ["<details><summary>Evidence</summary>", ""]
            for f in with_evidence:
                out.append(f"- {_code(f.rule)} at {_code(_where(f.file, f.line))}")
                out += [f"  - {_code(_where(e.file, e.line))}: {e.note}" for e in f.evidence]
            out += ["", "</details>", ""]
    else:
        out += ["No findings.", ""]
    tables = all_tables(report)
    for table in (t for t in tables if t.primary):
        out += _md_table(table)
    detail = [t for t in tables if not t.primary]
    if detail:  # supporting facts stay available without drowning the comment
        out += ["<details><summary>Other facts</summary>", ""]
        for table in detail:
            out += _md_table(table, "####")
        out += ["</details>", ""]
    out += ["### Could not check / not checked", ""]
    listed = [f"- **could not check**: {r}" for r in report.could_not_check]
    listed += [f"- {_code(n.rule)} not checked: {n.reason}" for n in report.not_checked]
    out += (listed or ["- none"]) + [""]
    return "\n".join(out)

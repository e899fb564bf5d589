"""A Report as a compact GitHub-flavoured Markdown PR comment: verdict, findings with evidence, tables, what
was not checked.
"""

from __future__ import annotations

from typing import Any

from harness.report.tables import Table, all_tables, headline_counts, where
from harness.verdict import Report


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
           f"{headline_counts(report)} (exit {report.exit_code}).", ""]
    findings = report.sorted_findings()
    if findings:
        out += ["| Rule | Severity | Location | Message |", "|---|---|---|---|"]
        out += [f"| {_code(f.rule)} | {f.severity} | {_md(_code(where(f.file, f.line)))} | "
                f"{_md(f.message + (f' (seed {f.seed})' if f.seed else ''))} |" for f in findings]
        out.append("")
        with_evidence = [f for f in findings if f.evidence]
        if with_evidence:
            out += ["<details><summary>Evidence</summary>", ""]
            for f in with_evidence:
                out.append(f"- {_code(f.rule)} at {_code(where(f.file, f.line))}")
                out += [f"  - {_code(where(e.file, e.line))}: {e.note}" for e in f.evidence]
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

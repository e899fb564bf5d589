"""Render a Report as human text, the JSON contract, SARIF 2.1.0 (GitHub code scanning) or a Markdown PR comment.

Every format says the verdict first and lists the rules that were *not* checked explicitly: a rule that did not run
is never shown as passing (in SARIF it becomes a tool notification, never a result). Each format lives in its own
module (text, contract, sarif, markdown); this one dispatches.
"""

from __future__ import annotations

from harness.errors import UserError
from harness.report.contract import render_json
from harness.report.markdown import render_markdown
from harness.report.sarif import render_sarif
from harness.report.text import render_text
from harness.verdict import Report

FORMATS = ("text", "json", "sarif", "markdown")


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

"""The `audit` table in four forms: a printed summary, Markdown, JSON and a self-contained sortable HTML page.

One row per (pull request, records folder): PR, folder, claimed val_bpb, verdict, error and warning counts, the
first error (rule, file:line, one-line message). Rows are read from harness.audit's AuditRow fields by name, so
this module does not import the audit (report never imports the rooms above it).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Any

from harness.report.tables import clip

COLUMNS = ("PR", "folder", "claimed val_bpb", "verdict", "errors", "warnings", "first error")


def _first_error(row: Any, width: int | None = None) -> str:
    first = row.first_error
    if not first:
        return ""
    where = first.get("file") or ""
    if where and first.get("line"):
        where += f":{first['line']}"
    message = clip(first.get("message", ""), width)
    return f"{first['rule']} {where} {message}".replace("  ", " ").strip()


def _cells(row: Any, width: int | None = None) -> list[str]:
    bpb = "" if row.claimed_bpb is None else f"{row.claimed_bpb:.4f}"
    return [row.pr, row.folder.removeprefix("records/"), bpb, row.verdict, str(row.errors), str(row.warnings),
            _first_error(row, width)]


def summary_lines(result: Any) -> list[str]:
    """The run's figures, the verdict counts and the error rules, one line each."""
    verdicts = Counter(r.verdict for r in result.rows)
    rules = Counter(rule for r in result.rows for rule in r.error_rules)
    cached = result.folders - result.checked
    lines = [(f"audit: {len(result.rows)} (pull request, folder) rows from {result.refs} heads, "
              f"{result.folders} distinct folders ({result.checked} checked, {cached} from the cache) "
              f"in {result.wall_s:.0f} s; base {result.base[:12]}, harness {result.harness_key}"),
             "verdicts: " + ", ".join(f"{v} {verdicts[v]}" for v in ("pass", "fail", "error"))]
    absent = sum(1 for r in result.rows if r.absent_files)
    if absent:
        lines.append(f"{absent} rows lack files in the local copy (git blobs absent, e.g. a size-filtered mirror); "
                     "those files were not judged")
    if rules:
        lines.append("error rules (rows): " + ", ".join(f"{r} {n}" for r, n in rules.most_common()))
    return lines


def audit_text(result: Any) -> str:
    """The summary and one line per failing or unchecked row."""
    lines = summary_lines(result)
    for row in sorted(result.rows, key=lambda r: (r.verdict == "pass", r.pr, r.folder)):
        if row.verdict != "pass":
            lines.append(f"  #{row.pr} {row.folder.removeprefix('records/')}: {row.verdict}  "
                         f"{_first_error(row, 160)}")
    return "\n".join(lines) + "\n"


def audit_markdown(result: Any) -> str:
    """A Markdown report: the summary, then the whole table."""
    def md(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["# Parameter Golf audit", "", *(f"- {line}" for line in summary_lines(result)), "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(md(c) for c in _cells(row, 200)) + " |" for row in result.rows]
    return "\n".join(out) + "\n"


def audit_json(result: Any) -> str:
    """Every row with every field, and the run's figures."""
    return json.dumps({"base": result.base, "harness_key": result.harness_key, "refs": result.refs,
                       "folders": result.folders, "checked": result.checked, "wall_s": round(result.wall_s, 1),
                       "exit_code": result.exit_code, "rows": [r.to_dict() for r in result.rows]}, indent=1)


_SORT_SCRIPT = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
  const key = tr => tr.children[col].dataset.v ?? tr.children[col].textContent;
  const num = v => v !== '' && !isNaN(v);
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    const c = num(x) && num(y) ? x - y : x.localeCompare(y); return asc ? c : -c; })
    .forEach(tr => body.appendChild(tr));
}));
"""

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; } th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: left; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; } td.fail { color: #b00; font-weight: 600; }
td.pass { color: #070; } td.error { color: #a60; } td.msg { max-width: 70em; }
"""


def audit_html(result: Any) -> str:
    """A self-contained page (no network): the summary and the table, sortable by any column."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in result.rows:
        cells = _cells(row)
        tds = [f'<td data-v="{int(row.pr) if row.pr.isdigit() else html.escape(row.pr)}">#{html.escape(cells[0])}</td>',
               f"<td>{html.escape(cells[1])}</td>", f"<td>{cells[2]}</td>",
               f'<td class="{row.verdict}">{row.verdict}</td>', f"<td>{cells[4]}</td>", f"<td>{cells[5]}</td>",
               f'<td class="msg">{html.escape(cells[6])}</td>']
        body.append("<tr>" + "".join(tds) + "</tr>")
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(result))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Parameter Golf audit</title>"
            f"<style>{_STYLE}</style></head><body><h1>Parameter Golf audit</h1>{summary}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{_SORT_SCRIPT}</script></body></html>\n")


RENDERERS = {"text": audit_text, "markdown": audit_markdown, "json": audit_json, "html": audit_html}

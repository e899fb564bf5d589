"""The human text rendering of a Report: verdict first, findings by severity with evidence, tables, then what
was not checked (optionally coloured with ANSI codes).
"""

from __future__ import annotations

from harness.report.tables import Table, all_tables, headline_counts, where
from harness.verdict import Report
from rules.finding import SEVERITIES

ANSI = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m", "pass": "\033[32m", "fail": "\033[31m",
        "reset": "\033[0m"}
SEVERITY_HEADINGS = {"error": "errors", "warning": "warnings", "info": "info"}


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
           f"(exit {report.exit_code})", headline_counts(report)]
    for severity in SEVERITIES:
        group = [f for f in report.sorted_findings() if f.severity == severity]
        if not group:
            continue
        out += ["", paint(severity, f"{SEVERITY_HEADINGS[severity]} ({len(group)})")]
        for f in group:
            seed = f" [seed {f.seed}]" if f.seed else ""
            out.append(f"  {f.rule}  {where(f.file, f.line)}{seed}")
            out.append(f"      {f.message}")
            out += [f"      - {where(e.file, e.line)}: {e.note}" for e in f.evidence]
    for table in all_tables(report):
        out += ["", *_text_table(table)]
    out += ["", "not checked"] + ([f"  - {n.rule}: {n.reason}" for n in report.not_checked] or ["  (none)"])
    out += ["", "could not check"] + ([f"  - {r}" for r in report.could_not_check] or ["  (none)"])
    return "\n".join(out) + "\n"

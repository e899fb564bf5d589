"""The human text rendering of a Report: verdict first, counts, findings by severity with evidence, the per-seed
table, what was allowed, not checked and could not be checked; the other fact tables (sizes, claims, claims vs
logs, judged by, timings, ...) and info findings only when verbose. Long lines wrap with a hanging indent.
"""

from __future__ import annotations

import textwrap
from itertools import groupby

from harness.report.tables import SIGNIFICANCE_KEY, Table, all_tables, headline_counts, where
from harness.verdict import Report
from rules.finding import SEVERITIES, Finding

ANSI = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m", "pass": "\033[32m", "fail": "\033[31m",
        "reset": "\033[0m"}
SEVERITY_HEADINGS = {"error": "errors", "warning": "warnings", "info": "info"}
WIDTH = 100  # messages and evidence wrap here (tables keep their rows whole)
TABLE_MAX_WIDTH = 140  # a wider table is printed as one record per row instead
# Fact keys shown without --verbose: the per-seed tables (every key naming seeds) and the probe checks.
CONCISE_FACT_WORDS = ("seed", "probes")
CONCISE_PROBLEMS = 5  # static-analysis problems listed without --verbose
MORE_HINT = "more: --verbose adds info findings and the facts (sizes, claims, claims vs logs, judged by, timings)"


def wrap(text: str, first: str, rest: str | None = None, width: int = WIDTH) -> list[str]:
    """TEXT as lines of at most WIDTH columns: FIRST before the first line, REST (default: spaces as wide as
    FIRST) before the others; long words (paths, hashes) are never broken."""
    rest = " " * len(first) if rest is None else rest
    return textwrap.wrap(" ".join(str(text).split()), width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _text_table(table: Table, drop_empty: bool) -> list[str]:
    """A table as aligned columns; DROP_EMPTY leaves out columns whose every cell is empty ('—')."""
    keep = [i for i, _c in enumerate(table.columns)
            if not (drop_empty and table.rows and all(r[i] in ("—", "") for r in table.rows))]
    columns, rows = [table.columns[i] for i in keep], [[r[i] for i in keep] for r in table.rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    if rows and len(line(columns)) > TABLE_MAX_WIDTH:
        return [table.title, *_records(columns, rows), *(x for n in table.notes for x in wrap(n, "  note: ", "        "))]
    return [table.title, line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows),
            *(x for n in table.notes for x in wrap(n, "  note: ", "        "))]


def _records(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A table too wide for a screen, one record per row: its first cell, then each non-empty cell as
    `column: value`, wrapped."""
    out = []
    for row in rows:
        out.append(f"  {row[0]}")
        for column, cell in zip(columns[1:], row[1:]):
            if cell not in ("—", ""):
                out += wrap(cell, f"      {column}: ", " " * 10)
    return out


def _finding_lines(f: Finding) -> list[str]:
    seed = f" [seed {f.seed}]" if f.seed else ""
    return [f"  {f.rule}  {where(f.file, f.line)}{seed}", *wrap(f.message, "      "),
            *(x for e in f.evidence for x in wrap(f"{where(e.file, e.line)}: {e.note}", "      - ", " " * 8))]


def _concise_table(table: Table, report: Report) -> bool:
    """Per-seed and probe tables, and the statistics asked for with --against (not the values they were run on)."""
    words = table.title.lower()
    if words.startswith("statistics ("):
        return SIGNIFICANCE_KEY in report.facts
    return ":" not in words and any(w in words.replace(" ", "_") for w in CONCISE_FACT_WORDS)


def _not_checked(report: Report) -> list[str]:
    """Rules not checked, those with the same reason on one line."""
    out = []
    for reason, group in groupby(report.not_checked, key=lambda n: n.reason):
        out += wrap(reason, f"  - {', '.join(n.rule for n in group)}: ", "      ")
    return out or ["  (none)"]


def _tail(report: Report, verbose: bool) -> list[str]:
    """Allowed findings, static-analysis problems, not checked and could not check."""
    out = []
    if report.allowed:
        out += ["", f"allowed by the reviewer's allow-list ({len(report.allowed)})"]
        for a in report.allowed:
            out += wrap(f"{a.finding.rule} {where(a.finding.file, a.finding.line)}: {a.finding.message} "
                        f"(reviewer: {a.reason})", "  - ", "      ")
    problems = report.analysis_problems if verbose else report.analysis_problems[:CONCISE_PROBLEMS]
    if problems:
        out += ["", f"static analysis problems ({len(report.analysis_problems)})"]
        out += [x for p in problems for x in wrap(p, "  - ", "      ")]
        if len(problems) < len(report.analysis_problems):
            out.append(f"  ... {len(report.analysis_problems) - len(problems)} more with --verbose")
    out += ["", "not checked", *_not_checked(report)]
    if report.could_not_check or verbose:
        out += ["", "could not check"]
        out += [x for r in report.could_not_check for x in wrap(r, "  - ", "    ")] or ["  (none)"]
    return out


def render_text(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """Human report: verdict, counts, findings (info only when VERBOSE), the per-seed table, allowed and unchecked
    rules; VERBOSE adds every other fact table."""
    paint = (lambda key, s: f"{ANSI[key]}{s}{ANSI['reset']}") if color else (lambda key, s: s)
    verdict = report.verdict
    out = [paint(verdict if verdict in ANSI else "warning", f"{verdict.upper()}") + f": {report.target} "
           f"(exit {report.exit_code})", headline_counts(report)]
    for severity in SEVERITIES if verbose else SEVERITIES[:2]:
        group = [f for f in report.sorted_findings() if f.severity == severity]
        if group:
            out += ["", paint(severity, f"{SEVERITY_HEADINGS[severity]} ({len(group)})")]
            out += [x for f in group for x in _finding_lines(f)]
    tables = [t for t in all_tables(report) if verbose or _concise_table(t, report)]
    for table in tables:
        out += ["", *_text_table(table, drop_empty=not verbose)]
    out += _tail(report, verbose)
    if not verbose:
        out += ["", MORE_HINT]
    return "\n".join(out) + "\n"

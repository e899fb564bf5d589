"""The outputs of `ci`: one merged SARIF run (code scanning accepts one run per tool and category), the Markdown
summary for a PR comment or $GITHUB_STEP_SUMMARY, GitHub workflow annotations, and the lines `ci` prints.

The PR comment starts with a hidden marker line (COMMENT_MARKER), then the overall verdict in one bold line, then
one table row per folder with its verdict and first error, outside any collapsed block; each folder's whole report
follows inside <details>. The printed lines carry the same findings, one per line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.report.render import render
from harness.report.sarif import sarif_dict
from harness.report.tables import clip, where
from harness.report.text import wrap
from harness.submission.gitsource import RECORDS
from harness.verdict import Report
from rules.finding import SEVERITIES, Finding

SARIF_CATEGORY = "pgolf-check"
# The PR comment's first line: the posting workflow finds its previous comment by it and edits that one.
COMMENT_MARKER = "<!-- pgolf-check -->"
STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "COULD NOT CHECK"}
FIRST_ERROR_CHARS = 200  # the first-error cell of a folder's row is cut here
# GitHub refuses comments over 65,536 characters and the posting workflow keeps the first 60,000 bytes; the
# collapsed per-folder reports stop short of both (UTF-8 bytes are counted).
COMMENT_BUDGET = 55_000


def write_ci_outputs(reports: dict[str, Report], base: str, head: str, *, sarif_path: Path | None,
                     markdown_path: Path | None) -> tuple[dict[str, Any], str]:
    """The merged SARIF and the Markdown summary, written where asked (the summary by default to
    $GITHUB_STEP_SUMMARY when set, appended); returns both."""
    markdown = summary_markdown(reports, base, head)
    sarif = merged_sarif(reports)
    if sarif_path is not None:
        sarif_path.write_text(json.dumps(sarif, indent=2) + "\n", encoding="utf-8")
    md_path = markdown_path or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY")
                                else None)
    if md_path is not None:
        with open(md_path, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    return sarif, markdown


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _counts(rep: Report) -> str:
    n = {s: sum(f.severity == s for f in rep.findings) for s in SEVERITIES}
    parts = [_plural(n["error"], "error"), _plural(n["warning"], "warning"), f"{n['info']} info"]
    if rep.allowed:
        parts.append(f"{len(rep.allowed)} allowed")
    return ", ".join(parts)


def _label(folder: str) -> str:
    return folder or "pull request"


def _at(f: Finding) -> str:
    return f" {where(f.file, f.line)}" if f.file else ""


def folder_lines(folder: str, rep: Report) -> list[str]:
    """One judged folder as `ci` prints it: verdict and counts, then each finding (rule, file:line, message),
    what the allow-list silenced and what could not be checked."""
    out = [f"{_label(folder)}: {rep.verdict.upper()} ({_counts(rep)})"]
    for f in rep.sorted_findings():
        seed = f" [seed {f.seed}]" if f.seed else ""
        out += wrap(f"{f.rule}{_at(f)}{seed}: {f.message}", f"  {f.severity:<8}", " " * 10)
    for a in rep.allowed:
        out += wrap(f"{a.finding.rule}{_at(a.finding)}: {a.finding.message} (reviewer: {a.reason})", "  allowed ",
                    " " * 10)
    out += [x for r in rep.could_not_check for x in wrap(r, "  could not check: ", " " * 10)]
    return out


def ci_text(reports: dict[str, Report], folders: list[str], exit_code: int, base: str, head: str, records: str,
            show_annotations: bool | None) -> str:
    """What `ci` prints: annotations (by default only under GitHub Actions), each judged folder with its findings
    (the findings of the PR comment), and the overall verdict with its exit code."""
    if show_annotations is None:
        show_annotations = os.environ.get("GITHUB_ACTIONS") == "true"
    lines = annotations(reports) if show_annotations else []
    for folder, rep in reports.items():
        lines += folder_lines(folder, rep)
    if not folders:
        lines.append(f"no submission folder under {records}/<track>/ changed between {base} and {head}")
    lines.append(f"ci verdict: {['pass', 'fail', 'error'][exit_code]} (exit {exit_code})")
    return "\n".join(lines)


def merged_sarif(reports: dict[str, Report]) -> dict[str, Any]:
    """One SARIF run with every folder's results (URIs relative to the repository root)."""
    logs = [sarif_dict(rep, uri_base=None if folder == "" else folder) for folder, rep in reports.items()]
    if not logs:
        logs = [sarif_dict(Report(target="pull request"))]
    runs = [run for log in logs for run in log["runs"]]
    base = runs[0]
    rules: dict[str, dict[str, Any]] = {}
    for run in runs:
        for rule in run["tool"]["driver"]["rules"]:
            rules.setdefault(rule["id"], rule)
    order = sorted(rules)
    results, notes = [], []
    for run in runs:
        for res in run["results"]:
            res["ruleIndex"] = order.index(res["ruleId"])
            results.append(res)
        for inv in run.get("invocations", []):
            notes += inv.get("toolExecutionNotifications", [])
    merged_run = {
        "tool": {"driver": {**base["tool"]["driver"], "rules": [rules[r] for r in order]}},
        "automationDetails": {"id": f"{SARIF_CATEGORY}/"},
        "invocations": [{"executionSuccessful": all(r.verdict != "error" for r in reports.values()),
                         "toolExecutionNotifications": notes}],
        "results": results,
        "properties": {"folders": {f or "(pull request)": {"verdict": r.verdict, "exitCode": r.exit_code}
                                   for f, r in reports.items()}},
    }
    return {"$schema": logs[0].get("$schema"), "version": "2.1.0", "runs": [merged_run]}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(reports: dict[str, Report]) -> list[str]:
    """GitHub workflow commands, one per error or warning finding (info findings stay in the summary)."""
    out = []
    for folder, rep in reports.items():
        for f in rep.sorted_findings():
            if f.severity == "info":
                continue
            props = []
            if f.file:
                path = f"{folder}/{f.file}" if folder else f.file
                props.append(f"file={_escape_property(path)}")
                if f.line:
                    props.append(f"line={int(f.line)}")
            props.append(f"title={_escape_property(f.rule)}")
            out.append(f"::{f.severity} {','.join(props)}::{_escape_data(f.message)}")
        for reason in rep.could_not_check:
            where = folder or "pull request"
            out.append(f"::error title=could not check::{_escape_data(where + ': ' + reason)}")
    return out


def _short(ref: str) -> str:
    """A full commit id as its first 12 digits; other refs as given."""
    return ref[:12] if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref.lower()) else ref


def _cell(text: str, limit: int = FIRST_ERROR_CHARS) -> str:
    """One line of a table cell: whitespace collapsed, cut at LIMIT characters, pipes and HTML escaped."""
    return clip(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'").replace("|", "\\|") + "`"


def first_problem(rep: Report) -> str:
    """The cell that says why a folder does not pass: its first error (rule, file:line, message), else the first
    reason it could not be checked; "—" when it passes."""
    if rep.errors:
        f = rep.sorted_findings()[0]
        location = f" {_code(where(f.file, f.line))}" if f.file else ""
        return f"{_code(f.rule)}{location}: {_cell(f.message)}"
    if rep.could_not_check:
        return f"could not check: {_cell(rep.could_not_check[0])}"
    return "—"


def _lead(reports: dict[str, Report], base: str, head: str) -> str:
    """The overall verdict, bold, and what it rests on, in one line."""
    verdicts = [r.verdict for r in reports.values()]
    word = "fail" if "fail" in verdicts else "error" if "error" in verdicts else "pass"
    n_folders = sum(1 for f in reports if f)
    n_err = sum(len(r.errors) for r in reports.values())
    n_warn = sum(f.severity == "warning" for r in reports.values() for f in r.findings)
    failing = sum(1 for f, r in reports.items() if f and r.verdict != "pass")
    return (f"**Parameter Golf compliance check: {STATUS_WORDS[word]}**: {_plural(n_folders, 'submission folder')}"
            f" ({failing} not passing), {_plural(n_err, 'error')}, {_plural(n_warn, 'warning')} "
            f"({_code(_short(base) + '...' + _short(head))})")


def _ordered(reports: dict[str, Report]) -> list[tuple[str, Report]]:
    """The pull request's own report first, then the folders that do not pass, then those that do (by name)."""
    return sorted(reports.items(), key=lambda item: (item[0] != "", item[1].verdict == "pass", item[0]))


def _summary(folder: str, rep: Report) -> str:
    return f"<summary><code>{_cell(_label(folder), 300)}</code>: {rep.verdict} ({_counts(rep)})</summary>"


def _details(folder: str, rep: Report) -> str:
    """FOLDER's whole Markdown report, collapsed."""
    return "\n".join(["<details>" + _summary(folder, rep), "", render(rep, "markdown"), "", "</details>"])


def _compact_details(folder: str, rep: Report) -> str:
    """FOLDER's findings (rule, severity, file:line, message) and what could not be checked, collapsed: the shape
    used when the whole reports would not fit in one comment."""
    rows = [f"| {_code(f.rule)} | {f.severity} | {_code(where(f.file, f.line))} | {_cell(f.message, 500)} |"
            for f in rep.sorted_findings()]
    table = ["| rule | severity | location | message |", "|---|---|---|---|", *rows] if rows else ["No findings."]
    unchecked = [f"- **could not check**: {_cell(r, 500)}" for r in rep.could_not_check]
    return "\n".join(["<details>" + _summary(folder, rep), "", *table, "", *unchecked, "</details>"])


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _collapsed(ordered: list[tuple[str, Report]], room: int) -> tuple[list[str], int]:
    """The collapsed per-folder blocks that fit in ROOM bytes: every whole report if they all fit, else every
    compact one, else as many compact ones as fit; and how many folders were left out."""
    for shape in (_details, _compact_details):
        blocks = ["\n" + shape(folder, rep) + "\n" for folder, rep in ordered]
        if sum(map(_size, blocks)) <= room:
            return blocks, 0
    kept: list[str] = []
    for block in blocks:
        if sum(map(_size, kept)) + _size(block) > room:
            break
        kept.append(block)
    return kept, len(blocks) - len(kept)


def summary_markdown(reports: dict[str, Report], base: str, head: str) -> str:
    """The PR comment: the marker line, the overall verdict, one table row per folder (verdict, counts, first
    error; failing folders first), then each folder's report collapsed, as much as GitHub's comment size allows."""
    lines = [COMMENT_MARKER, _lead(reports, base, head), ""]
    if not reports:
        return "\n".join(lines + ["No submission folder changed.", ""])
    lines += ["| folder | verdict | errors | warnings | first error |", "|---|---|---|---|---|"]
    ordered = _ordered(reports)
    for folder, rep in ordered:
        n_warn = sum(f.severity == "warning" for f in rep.findings)
        lines.append(f"| {_code(_label(folder).removeprefix(RECORDS + '/'))} | **{rep.verdict}** | "
                     f"{len(rep.errors)} | {n_warn} | {first_problem(rep)} |")
    text = "\n".join(lines) + "\n"
    blocks, left_out = _collapsed(ordered, COMMENT_BUDGET - _size(text))
    text += "".join(blocks)
    if left_out:
        text += (f"\nThe findings of {_plural(left_out, 'more folder')} do not fit in one comment; they are in the "
                 "job summary's annotations and the code-scanning results (or run `python cli.py ci` locally).\n")
    return text

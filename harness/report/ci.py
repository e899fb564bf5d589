"""The outputs of `ci`: one merged SARIF run (code scanning accepts one run per tool and category), the Markdown
summary for a PR comment or $GITHUB_STEP_SUMMARY, GitHub workflow annotations, and the lines `ci` prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.report.render import render
from harness.report.sarif import sarif_dict
from harness.verdict import Report

SARIF_CATEGORY = "pgolf-check"


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


def ci_text(reports: dict[str, Report], folders: list[str], exit_code: int, base: str, head: str, records: str,
            show_annotations: bool | None) -> str:
    """What `ci` prints: annotations (by default only under GitHub Actions), one line per judged folder, and the
    overall verdict with its exit code."""
    if show_annotations is None:
        show_annotations = os.environ.get("GITHUB_ACTIONS") == "true"
    lines = annotations(reports) if show_annotations else []
    lines += [f"{folder or 'pull request layout'}: {rep.verdict} "
              f"({len(rep.errors)} error(s), {len(rep.findings) - len(rep.errors)} other finding(s))"
              for folder, rep in reports.items()]
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


def summary_markdown(reports: dict[str, Report], base: str, head: str) -> str:
    """The PR comment: one table row per folder, then each folder's own Markdown report."""
    lines = [f"## Parameter Golf compliance check ({base}...{head})", ""]
    if not reports:
        return "\n".join(lines + ["No submission folder changed.", ""])
    lines += ["| folder | verdict | errors | warnings |", "|---|---|---|---|"]
    for folder, rep in reports.items():
        n_err = sum(f.severity == "error" for f in rep.findings)
        n_warn = sum(f.severity == "warning" for f in rep.findings)
        lines.append(f"| `{folder or '(pull request)'}` | **{rep.verdict}** | {n_err} | {n_warn} |")
    for folder, rep in reports.items():
        lines += ["", "<details><summary>" + (folder or "pull request layout") + "</summary>", "",
                  render(rep, "markdown"), "", "</details>"]
    return "\n".join(lines) + "\n"

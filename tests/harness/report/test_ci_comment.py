"""Tests for the `ci` PR comment and printed lines (harness.report.ci) over made-up folder reports."""

from __future__ import annotations

import re

import pytest

from harness.report.ci import COMMENT_MARKER, FIRST_ERROR_CHARS, ci_text, summary_markdown
from harness.verdict import Report
from rules.finding import Finding

TRACK = "records/track_10min_16mb"
GITHUB_COMMENT_LIMIT = 65_536
WORKFLOW_CUT_BYTES = 60_000  # .github/workflows/pgolf-comment.yml keeps this many bytes


def _folder_report(name: str, errors: int = 1, warnings: int = 1, message: str = "adapts on validation tokens",
                   could_not_check: str | None = None) -> Report:
    report = Report(target=name)
    for i in range(errors):
        report.add(Finding("TTT-PREEVAL-VAL", "error", f"{message} ({i})", file="train_gpt.py", line=100 + i))
    for i in range(warnings):
        report.add(Finding("CODE-COUNTING", "warning", f"helper {i} runs", file=f"lib/h{i}.py"))
    if could_not_check:
        report.could_not_check.append(could_not_check)
    report.facts["seeds"] = [{"seed": str(s), "val_bpb": 1.1 + s / 1000, "log": f"train_seed{s}.log"}
                             for s in range(3)]
    return report


def _reports(n_fail: int, n_pass: int = 0) -> dict[str, Report]:
    reports = {f"{TRACK}/2026-05-{i:02d}_Fail": _folder_report("f", errors=2) for i in range(n_fail)}
    reports.update({f"{TRACK}/2026-06-{i:02d}_Pass": _folder_report("p", errors=0) for i in range(n_pass)})
    return reports


def _before_details(md: str) -> str:
    return md.split("<details>", 1)[0]


class TestSummaryMarkdown:
    """The PR comment."""

    def test_marker_then_bold_verdict_line(self):
        """The first line is the hidden marker; the second the bold overall verdict, a plain word, no emoji."""
        lines = summary_markdown(_reports(1, 1), "main", "pr").splitlines()
        assert lines[0] == COMMENT_MARKER
        assert lines[1].startswith("**Parameter Golf compliance check: FAIL**")
        assert all(ord(c) < 0x2000 for c in lines[1])

    @pytest.mark.parametrize("reports, word", [
        ({}, "PASS"),
        ({f"{TRACK}/a": _folder_report("a", errors=0)}, "PASS"),
        ({f"{TRACK}/a": _folder_report("a", errors=0, could_not_check="no script")}, "COULD NOT CHECK"),
        ({f"{TRACK}/a": _folder_report("a", errors=0, could_not_check="x"), f"{TRACK}/b": _folder_report("b")},
         "FAIL"),
    ])
    def test_overall_status_word(self, reports, word):
        """Fail beats could-not-check beats pass."""
        assert summary_markdown(reports, "main", "pr").splitlines()[1].startswith(
            f"**Parameter Golf compliance check: {word}**")

    def test_folder_row_with_first_error_outside_details(self):
        """Each folder's row (folder, verdict, counts, first error with file:line) comes before any collapsed block."""
        md = summary_markdown({f"{TRACK}/2026-05-01_New": _folder_report("n")}, "main", "pr")
        row = next(line for line in _before_details(md).splitlines() if "2026-05-01_New" in line)
        assert row == ("| `track_10min_16mb/2026-05-01_New` | **fail** | 1 | 1 | `TTT-PREEVAL-VAL` `train_gpt.py:100`: "
                       "adapts on validation tokens (0) |")
        assert "<details><summary><code>records/track_10min_16mb/2026-05-01_New</code>: fail" in md

    def test_first_error_is_one_line_cut_at_the_limit(self):
        """A long multi-line message is one line of at most FIRST_ERROR_CHARS characters, with pipes escaped."""
        message = "a | b\n" + "x " * 400
        md = summary_markdown({f"{TRACK}/n": _folder_report("n", message=message)}, "main", "pr")
        row = next(line for line in _before_details(md).splitlines() if "`track_10min_16mb/n`" in line)
        cell = row.split(": ", 1)[1].rstrip(" |")
        assert cell.startswith("a \\| b x x") and cell.endswith("…") and len(cell) <= FIRST_ERROR_CHARS + 1
        assert len(re.findall(r"(?<!\\)\|", row)) == 6

    def test_could_not_check_and_pass_cells(self):
        """A folder that could not be checked shows why; a passing one shows a dash."""
        md = summary_markdown({f"{TRACK}/c": _folder_report("c", errors=0, could_not_check="no train_gpt.py"),
                               f"{TRACK}/p": _folder_report("p", errors=0)}, "main", "pr")
        assert "| **error** | 0 | 1 | could not check: no train_gpt.py |" in md
        assert "| **pass** | 0 | 1 | — |" in md

    def test_pull_request_row_then_failing_folders_first(self):
        """The pull request's own row leads, then folders that do not pass, then passing ones."""
        reports = {f"{TRACK}/a_pass": _folder_report("a", errors=0), f"{TRACK}/b_fail": _folder_report("b"),
                   "": _folder_report("pull request", errors=1, warnings=0)}
        rows = [line for line in _before_details(summary_markdown(reports, "main", "pr")).splitlines()
                if line.startswith("| `")]
        assert [r.split("`")[1] for r in rows] == ["pull request", "track_10min_16mb/b_fail", "track_10min_16mb/a_pass"]

    @pytest.mark.parametrize("n_fail, n_pass", [(1, 0), (20, 10), (200, 0)])
    def test_every_folder_has_a_row_and_the_comment_fits(self, n_fail, n_pass):
        """For 1, 30 or 200 folders: one row each before any details block; under GitHub's comment limit and the
        posting workflow's cut."""
        reports = _reports(n_fail, n_pass)
        md = summary_markdown(reports, "main", "pr")
        head = _before_details(md)
        assert all(f"`{name.removeprefix('records/')}`" in head for name in reports)
        assert len(md) < GITHUB_COMMENT_LIMIT and len(md.encode()) <= WORKFLOW_CUT_BYTES

    def test_reports_left_out_are_counted(self):
        """When even the compact blocks do not fit, the comment says how many folders' findings it left out."""
        md = summary_markdown(_reports(200), "main", "pr")
        blocks = md.count("<details>")
        assert 0 < blocks < 200 and f"The findings of {200 - blocks} more folders do not fit" in md

    def test_compact_blocks_when_whole_reports_do_not_fit(self):
        """One folder gets its whole report collapsed; thirty folders with large fact tables get the compact block
        (findings only) each."""
        assert "### Could not check / not checked" in summary_markdown(_reports(1), "main", "pr")
        reports = _reports(30)
        for rep in reports.values():
            rep.facts["size"] = {"seeds": [{"seed": str(i), "total": 15_000_000 + i} for i in range(200)]}
        md = summary_markdown(reports, "main", "pr")
        assert md.count("<details>") == 30 and "### Could not check / not checked" not in md
        assert md.count("| rule | severity | location | message |") == 30

    def test_long_commit_ids_are_shortened(self):
        """A 40-digit base is shown by its first 12 digits."""
        assert "`0123456789ab...HEAD`" in summary_markdown({}, "0123456789abcdef0123456789abcdef01234567", "HEAD")


class TestPrintedText:
    """What `ci` prints."""

    def test_folder_then_findings_wrapped(self):
        """Each folder: verdict and counts, then one wrapped line group per finding, then the overall verdict."""
        reports = {f"{TRACK}/n": _folder_report("n", message="word " * 60)}
        text = ci_text(reports, [f"{TRACK}/n"], 1, "main", "pr", "records", False)
        lines = text.splitlines()
        assert lines[0] == f"{TRACK}/n: FAIL (1 error, 1 warning, 0 info)"
        assert lines[1].startswith("  error   TTT-PREEVAL-VAL train_gpt.py:100: word word")
        assert lines[2].startswith(" " * 10 + "word") and max(map(len, lines)) <= 100
        assert "  warning CODE-COUNTING lib/h0.py: helper 0 runs" in lines and lines[-1] == "ci verdict: fail (exit 1)"

    def test_could_not_check_is_printed(self):
        """A reason a folder could not be checked is printed under it."""
        reports = {f"{TRACK}/c": _folder_report("c", errors=0, warnings=0, could_not_check="no train_gpt.py")}
        text = ci_text(reports, [f"{TRACK}/c"], 2, "main", "pr", "records", False)
        assert "  could not check: no train_gpt.py" in text.splitlines()

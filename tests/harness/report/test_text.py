"""Tests for the concise text report (harness.report.text without --verbose) and `check`'s text on one screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from harness.report.text import WIDTH, render_text, wrap
from harness.verdict import AllowedFinding, Report
from rules.finding import Evidence, Finding

ROOT = Path(__file__).resolve().parents[3]
SCREEN_LINES = 40


def _prose_lines(text: str) -> list[str]:
    """The lines that are not table rows (tables keep their rows whole)."""
    return [line for line in text.splitlines() if not line.startswith("  ") or line.startswith(("  -", "      "))]


class TestConcise:
    """What the default text shows and what it leaves to --verbose."""

    @pytest.mark.parametrize("snippet", [
        "FAIL: records/", "2 error(s), 1 warning(s), 1 info", "errors (2)", "warnings (1)",
        "ARTIFACT-CAP-16MB  train.log:12 [seed 42]", "- train.log:12: Total submission size", "per seed\n",
        "not checked\n", "- SIGNIFICANCE: no reference given", "could not check\n  - one log could not be decoded",
        "more: --verbose"])
    def test_keeps_verdict_findings_and_per_seed(self, rich_report, snippet):
        """The verdict, counts, error and warning findings with evidence, the per-seed table and the skips stay."""
        assert snippet in render_text(rich_report)

    @pytest.mark.parametrize("snippet", ["info (1)", "GPU names not logged", "\nsizes\n", "47,686"])
    def test_leaves_info_and_other_facts_to_verbose(self, rich_report, snippet):
        """Info findings and the fact tables other than per seed appear only with verbose."""
        assert snippet not in render_text(rich_report)
        assert snippet in render_text(rich_report, verbose=True)

    def test_empty_columns_are_dropped(self):
        """A per-seed column empty in every row is left out of the concise table, kept with verbose."""
        report = Report(target="t")
        report.facts["seeds"] = [{"seed": "1", "val_bpb": 1.2, "duplicate_of": None}]
        assert "duplicate_of" not in render_text(report)
        assert "duplicate_of" in render_text(report, verbose=True)

    def test_not_checked_with_one_reason_share_a_line(self):
        """Rules skipped for the same reason are listed together."""
        report = Report(target="t")
        for rule in ("BPB-BYTE-LUT", "TRAIN-VAL-OVERLAP"):
            report.skip(rule, "not FineWeb")
        report.skip("HARDWARE", "off track")
        assert "  - BPB-BYTE-LUT, TRAIN-VAL-OVERLAP: not FineWeb\n  - HARDWARE: off track" in render_text(report)

    def test_allowed_findings_show_message_and_reason(self):
        """A finding the allow-list silenced is listed with its message and the reviewer's reason."""
        report = Report(target="t")
        report.allowed.append(AllowedFinding(Finding("TTT-WARMUP-ON-VAL", "error", "warm-up on val",
                                                     file="train_gpt.py", line=7), "state discarded"))
        assert ("  - TTT-WARMUP-ON-VAL train_gpt.py:7: warm-up on val (reviewer: state discarded)"
                in render_text(report))


class TestWrapping:
    """Long messages and evidence wrap with a hanging indent."""

    def test_long_message_and_evidence_wrap_under_the_width(self):
        """Every line that is not a table row fits in WIDTH columns; the words all survive, in order."""
        message = " ".join(f"word{i}" for i in range(120))
        report = Report(target="t")
        report.add(Finding("HARDWARE", "error", message, file="a.log", line=3,
                           evidence=(Evidence("a.log", 3, message),)))
        lines = render_text(report).splitlines()
        assert max(len(line) for line in _prose_lines("\n".join(lines))) <= WIDTH
        body = [line for line in lines if line.startswith("      ") and not line.startswith(("      -", " " * 8))]
        assert all(line.startswith("      word") for line in body)
        assert " ".join(" ".join(body).split()) == message

    @pytest.mark.parametrize("text, first, rest, expected", [
        ("a b c", "- ", None, ["- a b c"]),
        ("aaaa bbbb cccc", "> ", "  ", ["> aaaa", "  bbbb", "  cccc"]),
        ("x" * 20, "- ", None, ["- " + "x" * 20]),  # a long word is never broken
        ("", "- ", None, ["-"]),
    ])
    def test_wrap(self, text, first, rest, expected):
        """wrap() indents the first line with FIRST and the others with REST (default: as wide as FIRST)."""
        assert wrap(text, first, rest, width=8) == expected


class TestCheckOnOneScreen:
    """`python cli.py check submissions/my_run/` fits on one screen."""

    def test_shipped_example_fits(self):
        """The default text of the shipped example is at most 40 lines and leads with its verdict."""
        result = CliRunner().invoke(cli.main, ["check", str(ROOT / "submissions" / "my_run")])
        lines = result.output.rstrip("\n").splitlines()
        assert result.exit_code == 0 and lines[0].startswith("PASS: ")
        assert len(lines) <= SCREEN_LINES and "\nseeds\n" in result.output

    def test_verbose_adds_the_fact_tables(self):
        """-v adds the size, claims and judged-by tables."""
        result = CliRunner().invoke(cli.main, ["check", str(ROOT / "submissions" / "my_run"), "-v"])
        assert all(f"\n{title}\n" in result.output for title in ("size", "claims", "claims vs logs", "judged by"))

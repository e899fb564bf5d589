"""Tests for the reproduce report (harness.report.html and harness.report.reproduce) over made-up ReproduceResults."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest

from harness.report.html import bpb_svg, loss_curves_svg, nice_ticks, render_html, tick_label, verdict_reason
from harness.report.reproduce import render_markdown, write_reproduce_reports
from harness.run.outcome import BpbSummary, Equivalence, ReproduceFacts, ReproduceOptions, ReproduceResult, SeedFigures
from harness.verdict import Report
from rules.finding import Finding

CLAIM, TOL = 1.1194, 0.002


def _row(seed: int, bpb: float | None) -> dict:
    final = None if bpb is None else {"tag": "final_exact", "val_loss": bpb * 1.68, "val_bpb": bpb, "line": 9}
    timing = {"setup_s": 2.0, "train_s": 9.5, "script_train_ms": 9400, "eval_s": 1.5, "total_s": 13.0}
    return {"seed": seed, "status": "complete" if bpb else "failed", "final": final, "timing": timing,
            "curve": [(s, 4.0 - s / 1000 - seed / 1e5) for s in range(0, 1001, 100)]}


def _result(bpbs: dict[int, float | None], *, reason: str = "", reference: float | None = None,
            finding: Finding | None = None, could_not_check: str | None = None,
            target: str = "/runs/2026-05-01_Sample") -> ReproduceResult:
    """A ReproduceResult as `reproduce` returns it, for the seeds and scores given."""
    rows = [_row(s, b) for s, b in bpbs.items()]
    scored = [b for b in bpbs.values() if b is not None]
    report = Report(target=target)
    if finding is not None:
        report.add(finding)
    if could_not_check:
        report.could_not_check.append(could_not_check)
    report.skip("SIGNIFICANCE", "no reference given (--against)")
    mean = sum(scored) / len(scored) if scored else None
    eq = None if mean is None else Equivalence(CLAIM, mean, mean - CLAIM, TOL, "|mean - claim| <= tol",
                                               abs(mean - CLAIM) <= TOL, {})
    facts = ReproduceFacts(submission_unchanged=True, seeds=[SeedFigures.from_row(r) for r in rows],
                           isolation={"level": "namespaces", "memory_cap": "8 GiB"},
                           summary=None if mean is None else BpbSummary(len(scored), mean, None), equivalence=eq,
                           reason=reason, reference_val_bpb=reference)
    return ReproduceResult(report=report, options=ReproduceOptions(), results_dir=Path("."), facts=facts, seeds=rows)


@pytest.fixture
def passing() -> ReproduceResult:
    """Three seeds within the claim, with a reference."""
    return _result({42: 1.1192, 7: 1.1200, 2024: 1.1196}, reason="3 of 3 seeds reproduced the claim",
                   reference=1.1228)


@pytest.fixture
def failing() -> ReproduceResult:
    """One seed killed at the cap (an error finding), one without a score."""
    return _result({42: 1.1262, 7: None}, reason="seed 7 failed: RuntimeError: out of memory",
                   finding=Finding("TRAIN-TIME-600", "error", "seed 42: stopped by the harness", file="seed_42/x.log"),
                   could_not_check="seed 7: the run ended without a final val_bpb")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


class TestBanner:
    """The verdict banner leads the page."""

    @pytest.mark.parametrize("which, css, word", [("passing", "pass", "PASS"), ("failing", "fail", "FAIL")])
    def test_banner_class_word_and_reason(self, request, which, css, word):
        """The banner is coloured by the verdict and carries the status word and the one-line reason."""
        result = request.getfixturevalue(which)
        page = render_html(result)
        banner = re.search(r'<div class="banner (\w+)"><span class="status">([^<]+)</span><span class="reason">'
                           r"([^<]+)</span>", page)
        assert banner.groups() == (css, word, result.facts.reason)
        assert page.index("banner") < page.index("<svg")

    def test_could_not_check_banner(self):
        """A run with no error but a seed that could not run is the could-not-check banner."""
        page = render_html(_result({42: 1.1194, 7: None}, could_not_check="seed 7 ended without a score"))
        assert '<div class="banner error"><span class="status">COULD NOT CHECK</span>' in page

    @pytest.mark.parametrize("kwargs, expected", [
        ({"finding": Finding("TRAIN-TIME-600", "error", "seed 1: over the cap")}, "TRAIN-TIME-600: seed 1: over the cap"),
        ({"could_not_check": "seed 7 ended without a score"}, "seed 7 ended without a score"),
        ({}, "within 0.002 bpb of the claimed 1.1194"),
    ])
    def test_reason_falls_back_when_the_run_gave_none(self, kwargs, expected):
        """Without facts.reason: the first error, else the first could-not-check reason, else the equivalence."""
        assert expected in verdict_reason(_result({42: 1.1194}, **kwargs))

    def test_everything_is_escaped(self):
        """A hostile folder name or reason cannot inject markup."""
        page = render_html(_result({42: 1.1194}, reason="<script>x</script>", target="/r/<img src=x>"))
        assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page


class TestSelfContained:
    """Nothing on the page is fetched."""

    def test_no_network_references(self, passing):
        """No external URL, script, stylesheet link or src attribute; CSS and SVG are inline."""
        page = render_html(passing)
        tags = _parse(page).tags
        assert not [t for t, a in tags if t in ("script", "link", "img", "iframe") or "src" in a or "href" in a]
        assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * 2
        assert "<style>" in page and "<pre>" not in page

    def test_tables_are_html_tables(self, passing):
        """Per-seed figures are rows of a real table, one per seed."""
        tables = re.findall(r"<table.*?</table>", render_html(passing))
        seed_table = next(t for t in tables if "train s (harness)" in t)
        assert seed_table.count("<tr>") == 1 + 3 and "<td>2024</td>" in seed_table


class TestBpbChart:
    """Each seed's final val_bpb against the claim, its tolerance band and the reference."""

    def test_marks(self, passing):
        """A dot per scored seed, the claim line inside a band as wide as twice the tolerance, the reference dashed."""
        svg = bpb_svg(passing.seeds, CLAIM, TOL, 1.1228)
        assert svg.count("<circle") == 3
        assert 'stroke-dasharray="6 4"' in svg and "reference mean 1.12280" in svg
        assert "claim 1.11940" in svg and "claim ± 0.002 bpb" in svg
        band = re.search(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
        assert float(band.group(2)) > 0

    def test_axes_are_labelled_with_ticks(self, passing):
        """The y axis is val_bpb with round tick values; the x axis names each seed."""
        text = " ".join(_parse(bpb_svg(passing.seeds, CLAIM, TOL, None)).text)
        assert "val_bpb (lower is better)" in text and "seed 42" in text and "seed 2024" in text
        assert re.search(r"\b1\.11[0-9]{1,2}\b", text)

    def test_no_reference_no_dashed_line(self, passing):
        """Without a reference there is no reference line."""
        assert "stroke-dasharray=\"6 4\"" not in bpb_svg(passing.seeds, CLAIM, TOL, None)

    def test_seed_without_score(self, failing):
        """A seed without a final score is named on the axis, with no dot."""
        svg = bpb_svg(failing.seeds, CLAIM, TOL, None)
        assert "no score" in svg and svg.count("<title>seed") == 1

    def test_nothing_scored(self):
        """With no score at all the chart is a sentence."""
        assert bpb_svg([_row(1, None)], CLAIM, TOL, None) == "<p>No seed produced a final val_bpb.</p>"


class TestLossChart:
    """Training loss against the step."""

    def test_one_line_per_seed_with_step_ticks(self, passing):
        """A polyline per seed; the x axis is labelled and ticked from 0 to the last step."""
        svg = loss_curves_svg(passing.seeds)
        text = _parse(svg).text
        assert svg.count("<polyline") == 3 and "training step" in text and "train_loss" in text
        assert {"0", "1000"} <= set(text)

    def test_no_curve(self):
        """Without logged losses the chart is a sentence."""
        assert "No training-loss lines" in loss_curves_svg([{"seed": 1, "curve": []}])


class TestTicks:
    """Round tick values."""

    @pytest.mark.parametrize("lo, hi", [(1.1172, 1.1241), (0, 2000), (2.03, 4.11), (-3.0, 7.5), (1.25, 1.25),
                                        (15_000_000, 16_000_000)])
    def test_cover_the_range_evenly(self, lo, hi):
        """Ticks start at or below LO, end at or above HI, are evenly spaced and few."""
        ticks = nice_ticks(lo, hi)
        steps = {round(b - a, 9) for a, b in pairwise(ticks)}
        assert ticks[0] <= lo and ticks[-1] >= hi and len(steps) == 1 and 2 <= len(ticks) <= 8

    @pytest.mark.parametrize("ticks, value, label", [
        ([1.115, 1.1175, 1.12], 1.1175, "1.1175"), ([0, 500, 1000], 500, "500"), ([1.0, 1.5], 1.5, "1.5"),
        ([0, 5_000_000], 5_000_000, "5,000,000")])
    def test_labels_have_the_step_decimals(self, ticks, value, label):
        """A tick label has as many decimals as the step, no float noise."""
        assert tick_label(value, ticks) == label


class TestMarkdown:
    """report.md leads with the verdict and its reason."""

    def test_leads_with_verdict_and_reason(self, failing):
        """The title line has the status word; the next paragraph is the reason."""
        lines = render_markdown(failing).splitlines()
        assert lines[0] == "## pgolf reproduce: 2026-05-01_Sample: **FAIL**"
        assert lines[2] == "seed 7 failed: RuntimeError: out of memory"

    def test_written_with_the_page(self, passing, tmp_path):
        """write_reproduce_reports writes report.md, report.html and summary.json."""
        passing.results_dir = tmp_path
        write_reproduce_reports(passing)
        assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
        assert (tmp_path / "report.md").read_text().startswith("## pgolf reproduce")

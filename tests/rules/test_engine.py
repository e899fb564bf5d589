"""The engine: discovery, one-walk dispatch, parse failures, flag guards with log hints, evidence, speed."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from rules.base import Invalid, LogHints, Rule, Valid
from rules.engine import SourceUnit, analyse, check_source, discover_rules, implemented_rule_ids
from rules.ttt_preeval_val import PreEvalValTTT

MY_RULES = {"TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "TEMP-CALIB-ON-VAL", "TTT-WARMUP-ON-VAL",
            "VAL-SELECTION"}


class _CountCalls(Rule):
    """Counts calls; used only to test dispatch.

    Why: a test double.

    Instead: nothing.
    """

    ID, CODE, MESSAGE = "VAL-SELECTION", "PGTEST", "test"
    VALID = [Valid("x = 1\n")]
    INVALID = [Invalid("f()\n")]

    def visit_Call(self, node: ast.Call) -> None:
        self.report(node, "call")

    def leave_Module(self, node: ast.Module) -> None:
        self.report(1, f"left module after {len(self.violations)} calls", severity="info")


def test_discovery_finds_every_causality_rule():
    """Rules are discovered by walking the package and my six rule IDs are all implemented."""
    assert MY_RULES <= set(implemented_rule_ids())
    assert all(issubclass(cls, Rule) for cls in discover_rules())


def test_visit_and_leave_are_dispatched_once_per_node():
    """visit_Call fires for each call and leave_Module after all children."""
    result = check_source("f()\ng()\nh()\n", rule_classes=[_CountCalls])
    messages = [v.message for v in result.violations]
    assert messages.count("call") == 3 and messages[-1] == "left module after 3 calls"


@pytest.mark.parametrize("text", ["def f(:\n", "x = (\n", "\x00"])
def test_unparsable_unit_is_a_problem_not_an_exception(text):
    """A syntax error is reported as a problem for that unit, never raised."""
    result = analyse([SourceUnit("train_gpt.py", text)])
    assert result.problems and not result.violations


@pytest.mark.parametrize("hints, severity", [
    (LogHints(), "warning"),
    (LogHints(hyperparameters={"PREQUANT_TTT": "1"}), "error"),
    (LogHints(hyperparameters={"prequant_ttt": "True"}), "error"),
    (LogHints(tags=frozenset({"prequant_ttt:done"})), "error"),
    (LogHints(hyperparameters={"PREQUANT_TTT": "0"}), "warning"),
])
def test_flag_off_by_default_is_a_warning_unless_logs_show_it_ran(hints, severity):
    """Illegal code behind a default-off flag is a warning; the logs enabling it make it an error."""
    case = next(c for c in PreEvalValTTT.INVALID if "flag off" in c.name)
    found = [v for v in check_source(case.code, log_hints=hints).violations if v.rule == PreEvalValTTT.ID]
    assert [v.severity for v in found] == [severity]


def test_evidence_names_source_update_and_later_score():
    """A pre-quant TTT finding cites where val data came from, the backward, the step and the later scoring."""
    case = PreEvalValTTT.INVALID[0]
    (violation,) = [v for v in check_source(case.code).violations if v.rule == PreEvalValTTT.ID]
    notes = " | ".join(note for _, note in violation.evidence)
    for phrase in ("comes from", "gradient", "optimizer step", "scored afterwards"):
        assert phrase in notes


def test_suppression_comments_are_ignored():
    """A `# noqa` or `# pgcheck: disable` comment does not silence a finding."""
    case = PreEvalValTTT.INVALID[0]
    text = case.code.replace("loss.backward()", "loss.backward()  # noqa pgcheck: disable=TTT-PREEVAL-VAL")
    assert [v for v in check_source(text).violations if v.rule == PreEvalValTTT.ID]


def test_large_script_is_analysed_quickly():
    """Twenty copies of every fixture (~2,000 lines of functions) go through all rules in well under a second."""
    parts = []
    for i, cls in enumerate(discover_rules()):
        for j, case in enumerate([*cls.VALID, *cls.INVALID]):
            parts.append(f"def fixture_{i}_{j}():\n" + "".join("    " + line + "\n" for line in case.code.splitlines()))
    text = "\n".join(parts * 3)
    assert len(text.splitlines()) > 1000
    start = time.perf_counter()
    result = check_source(text)
    assert not result.problems
    assert time.perf_counter() - start < 2.0


def test_engine_never_imports_harness_or_torch():
    """rules/ modules written here import neither harness/, reference/, torch nor click."""
    for path in Path(__file__).resolve().parents[2].joinpath("rules").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in {"harness", "reference", "torch", "click"}, (path.name, name)


def test_rule_docs_render_every_implemented_rule():
    """The generated markdown has a section and an example for every implemented rule."""
    from rules.docs import render_rules_markdown

    text = render_rules_markdown()
    for cls in discover_rules():
        assert f"{cls.CODE} `{cls.ID}`" in text
    assert text.count("```python") >= 2 * len(discover_rules())

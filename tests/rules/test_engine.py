"""The engine: discovery, one-walk dispatch, parse failures, flag guards with log hints, evidence, speed."""

from __future__ import annotations

import ast
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
        self.report(1, f"left module after {len(self.findings)} calls", severity="info")


def test_discovery_finds_every_causality_rule():
    """Rules are discovered by walking the package and my six rule IDs are all implemented."""
    assert MY_RULES <= set(implemented_rule_ids())
    assert all(issubclass(cls, Rule) for cls in discover_rules())


def test_visit_and_leave_are_dispatched_once_per_node():
    """visit_Call fires for each call and leave_Module after all children."""
    result = check_source("f()\ng()\nh()\n", rule_classes=[_CountCalls])
    messages = [v.message for v in result.findings]
    assert messages.count("call") == 3 and messages[-1] == "left module after 3 calls"


@pytest.mark.parametrize("text", ["def f(:\n", "x = (\n", "\x00"])
def test_unparsable_unit_is_a_problem_not_an_exception(text):
    """A syntax error is reported as a problem for that unit, never raised."""
    result = analyse([SourceUnit("train_gpt.py", text)])
    assert result.problems and not result.findings


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
    found = [v for v in check_source(case.code, log_hints=hints).findings if v.rule == PreEvalValTTT.ID]
    assert [v.severity for v in found] == [severity]


def test_evidence_names_source_update_and_later_score():
    """A pre-quant TTT finding cites where val data came from, the backward, the step and the later scoring."""
    case = PreEvalValTTT.INVALID[0]
    (violation,) = [v for v in check_source(case.code).findings if v.rule == PreEvalValTTT.ID]
    notes = " | ".join(e.note for e in violation.evidence)
    for phrase in ("comes from", "gradient", "optimizer step", "scored afterwards"):
        assert phrase in notes


def test_suppression_comments_are_ignored():
    """A `# noqa` or `# pgcheck: disable` comment does not silence a finding."""
    case = PreEvalValTTT.INVALID[0]
    text = case.code.replace("loss.backward()", "loss.backward()  # noqa pgcheck: disable=TTT-PREEVAL-VAL")
    assert [v for v in check_source(text).findings if v.rule == PreEvalValTTT.ID]


def test_large_script_is_analysed_without_problems():
    """Three copies of every fixture (over 1,000 lines of functions) go through all rules with no analysis problem
    (its speed is measured by bench/check_speed.py, not here)."""
    parts = []
    for i, cls in enumerate(discover_rules()):
        for j, case in enumerate([*cls.VALID, *cls.INVALID]):
            parts.append(f"def fixture_{i}_{j}():\n" + "".join("    " + line + "\n" for line in case.code.splitlines()))
    text = "\n".join(parts * 3)
    assert len(text.splitlines()) > 1000
    result = check_source(text)
    assert not result.problems


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


_SHARED = '''import glob
import numpy as np
def shard_paths(pattern):
    return sorted(glob.glob(pattern))
def read_shard(path):
    return np.fromfile(path, dtype="<u2")
class Stream:
    def __init__(self, pattern):
        self.paths = shard_paths(pattern)
        self.tokens = read_shard(self.paths[0])
    def take(self, n):
        return self.tokens[:n]
class Totals:
    def __init__(self):
        self.tokens = 0
def count(totals, tokens):
    totals.tokens += tokens.size
val = np.concatenate([read_shard(p) for p in shard_paths("fineweb_val_*.bin")])
train = np.concatenate([read_shard(p) for p in shard_paths("fineweb_train_*.bin")])
train_batch = Stream("fineweb_train_*.bin").take(8)
val_batch = Stream("fineweb_val_*.bin").take(8)
totals = Totals()
count(totals, val)
groups = {}
groups.setdefault(8, []).append(val[:8])
'''


def _module_value(facts, name):
    """The last module-level expression assigned to NAME."""
    node = [n for n in facts.tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == name][-1]
    return node.value


def test_taint_is_resolved_per_call_site_and_per_instance():
    """Helpers and classes shared by the train and val loaders taint only what the val pattern flows into."""
    from rules.analysis.facts import Facts
    from rules.engine import parse_python

    facts = Facts(parse_python(_SHARED, "x.py"), _SHARED)
    assert facts.is_val(_module_value(facts, "val")) and not facts.is_val(_module_value(facts, "train"))
    assert facts.is_val(_module_value(facts, "val_batch"))
    assert not facts.is_val(_module_value(facts, "train_batch"))  # Totals.tokens is another class's field
    groups = next(n for n in ast.walk(facts.tree) if isinstance(n, ast.Name) and n.id == "groups")
    assert facts.is_val(groups)  # filled through groups.setdefault(...).append(val row)


def test_branch_dead_for_every_caller_is_not_a_path():
    """A train-first branch behind `order == "train_first"` is no path when callers leave order at its default."""
    from rules.ttt_preeval_val import _ORDER_SWITCH, _ORDER_SWITCH_USED

    def preeval(code):
        return [v for v in check_source(code).findings if v.rule == PreEvalValTTT.ID]

    assert preeval(_ORDER_SWITCH) == []
    assert [v.line for v in preeval(_ORDER_SWITCH_USED)] == [3]


def test_engine_walk_reuses_the_graph_preorder():
    """visit_X dispatch through the facts graph sees every X node once, in source order, like a full walk."""
    seen: list[int] = []

    class _Calls(Rule):
        """Records call lines; a test double.

        Why: a test double.

        Instead: nothing.
        """

        ID, CODE, MESSAGE = "VAL-SELECTION", "PGTEST2", "test"

        def visit_Call(self, node: ast.Call) -> None:
            seen.append(node.lineno)

    def preorder(node):
        yield node
        for child in ast.iter_child_nodes(node):
            yield from preorder(child)

    text = "def f(a=g()):\n    return h(k(a))\n@d(1)\nclass C:\n    x = m()\n"
    check_source(text, rule_classes=[_Calls])
    assert seen == [n.lineno for n in preorder(ast.parse(text)) if isinstance(n, ast.Call)]


def test_flag_defs_from_the_graph_match_a_full_walk():
    """Environment flags found from the graph's env reads equal those of a full-tree walk, in the same order."""
    from rules.analysis.flags import collect_flag_defs
    from rules.analysis.graph import build_graph

    text = ('import os\nA = int(os.environ.get("A", "1"))\nclass H:\n    b = os.getenv("B", "x")\n'
            '    c = bool(int(os.environ.get("C", os.environ.get("D", "0"))))\n'
            'def f():\n    e: str = os.environ.get("E", "")\n')
    tree = ast.parse(text)
    walked, indexed = collect_flag_defs(tree), collect_flag_defs(tree, build_graph(tree))
    assert list(walked.items()) == list(indexed.items()) and list(walked) == ["A", "b", "c", "e"]


MULTI_SITE = '''
import os
import torch

def adapt(model, val_tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(0, len(val_tokens) - 64, 64):
        loss = model(val_tokens[i:i + 64])
        loss.backward()
        opt.step()

def score(model, val_tokens):
    loss_sum = 0.0
    with torch.no_grad():
        for i in range(0, len(val_tokens) - 64, 64):
            loss_sum += float(model(val_tokens[i:i + 64]))
    return loss_sum

def main():
    model = torch.nn.Linear(4, 4)
    val_tokens = torch.load("fineweb_val_000000.bin")
    if os.environ.get("REPLAY_ONLY", "0") == "1":
        adapt(model, val_tokens)
    else:
        adapt(model, val_tokens)
    print(score(model, val_tokens))
'''


def test_code_reached_from_an_unguarded_call_site_keeps_its_error():
    """A function called both behind an off-by-default flag and on the default path is judged by the default path."""
    from rules.engine import check_source

    hits = [v for v in check_source(MULTI_SITE).findings if v.rule == "TTT-PREEVAL-VAL"]
    assert [v.severity for v in hits] == ["error"]


@pytest.mark.parametrize("where", ["finish", "visit_Call"])
def test_a_crashing_rule_is_not_checked_and_the_others_stand(monkeypatch, where):
    """A rule that raises (in a visit or in finish) is reported as failed; every other rule's findings stand."""
    from rules.network_at_eval import NetworkAtEval
    from rules.ttt_preeval_val import PreEvalValTTT

    def boom(self, *args):
        raise ValueError("analysis bug")

    monkeypatch.setattr(NetworkAtEval, where, boom, raising=False)
    case = PreEvalValTTT.INVALID[0]
    result = check_source(case.code + "\nimport urllib.request\nurllib.request.urlopen('http://example.com/w')\n")
    assert result.failed == {NetworkAtEval.ID: "train_gpt.py: ValueError: analysis bug"}
    assert PreEvalValTTT.ID in {f.rule for f in result.findings}
    assert NetworkAtEval.ID not in {f.rule for f in result.findings}


_CLOSURE_PROBE = '''
import ast
from rules.analysis.dataflow import FunctionFlow
src = "def f():\\n" + "".join(f"    v{i} = " + " + ".join(f"w{i}_{j}" for j in range(6)) + f" + v{i + 1}\\n"
                             for i in range(80)) + "    return v0\\n"
func = ast.parse(src).body[0]
print(sorted(FunctionFlow(func).closure(func.body[-1], limit=60)))
'''


def test_a_capped_closure_does_not_depend_on_the_hash_seed():
    """Which names a capped dependency walk reaches is the same under every hash seed (set order never decides)."""
    import os
    import subprocess
    import sys

    outputs = {subprocess.run([sys.executable, "-c", _CLOSURE_PROBE], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outputs) == 1

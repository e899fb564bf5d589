"""TRAIN-ON-VAL: the training data pattern or the training loader points at the validation split."""

from __future__ import annotations

import ast
import re

from rules.analysis.dataflow import TRAIN_NAME, last_name, script_facts
from rules.analysis.phases import phases
from rules.analysis.taint import guard_arms
from rules.base import Invalid, Rule, Valid

_LINK_VAL_AS_TRAIN = re.compile(
    r"^\s*(?:ln\b[^\n]*|cp\b[^\n]*|mv\b[^\n]*)fineweb_val_\S*\s+\S*fineweb_train_", re.MULTILINE
)


# Periodic validation inside the training loop, drawn from a validation loader without gradients.
_DIAGNOSTIC_IN_LOOP = """import torch
train_files = 'data/fineweb_train_*.bin'
val_files = 'data/fineweb_val_*.bin'
def main(model, opt):
    loader = DistributedTokenLoader(train_files)
    held_out = DistributedTokenLoader(val_files)
    for step in range(10):
        model(loader.next_batch()).backward()
        opt.step()
        with torch.no_grad():
            print(model(held_out.next_batch()).item())
"""
_DIAGNOSTIC_TRAINED = _DIAGNOSTIC_IN_LOOP.replace("with torch.no_grad():", "if True:").replace(
    "print(model(held_out.next_batch()).item())", "model(held_out.next_batch()).backward()")

# The training pattern is chosen by a flag: the validation arm runs only when the flag is on.
_SWITCHED = """import os
train_files = 'data/fineweb_train_*.bin'
val_files = 'data/fineweb_val_*.bin'
def main(model, opt):
    pattern = val_files if bool(int(os.environ.get("TRAIN_ON_VAL", "{default}"))) else train_files
    loader = DistributedTokenLoader(pattern)
    for step in range(10):
        model(loader.next_batch()).backward()
        opt.step()
"""


class TrainOnVal(Rule):
    """Flags a training file pattern naming ``fineweb_val_*`` and training loaders fed validation data.

    Why: README FAQ: no training on the validation set before evaluating on it; PR #44 (a validation-only run made
    by symlinking the val shard as the train shard) was closed (README text + maintainer closure).

    Instead: train only on ``fineweb_train_*``; read validation only in the evaluation phase.
    """

    ID = "TRAIN-ON-VAL"
    CODE = "PG108"
    MESSAGE = "training reads the validation split"
    VALID = [
        Valid(
            "train_files = 'data/fineweb_train_*.bin'\n"
            "val_files = 'data/fineweb_val_*.bin'\n"
            "def main(model, opt):\n"
            "    loader = DistributedTokenLoader(train_files)\n"
            "    for step in range(10):\n"
            "        model(loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    return eval_val(model, load_validation_tokens(val_files))\n",
            name="validation read only for evaluation",
        ),
        Valid("val_files = 'data/fineweb_val_*.bin'\nval = load_validation_tokens(val_files)\n",
              name="val_files in eval code"),
        Valid(_DIAGNOSTIC_IN_LOOP, name="a no_grad validation diagnostic inside the training loop"),
    ]
    INVALID = [
        Invalid("train_files = 'data/fineweb_val_*.bin'\n", expected_line=1, name="train pattern names the val split"),
        Invalid(
            "val_files = 'data/fineweb_val_*.bin'\n"
            "def main(model, opt):\n"
            "    loader = DistributedTokenLoader(val_files)\n"
            "    for step in range(10):\n"
            "        model(loader.next_batch()).backward()\n"
            "        opt.step()\n",
            expected_line=3,
            name="training loader on val_files",
        ),
        Invalid(_DIAGNOSTIC_TRAINED, expected_line=6, expected_severity="error",
                name="near-miss: the same loop back-propagates through the validation batches"),
        Invalid(_SWITCHED.format(default="1"), expected_line=6, expected_severity="error",
                name="the loader's pattern picks the validation split behind a flag that is on by default"),
        Invalid(_SWITCHED.format(default="0"), expected_line=6, expected_severity="warning",
                name="near-miss: the same switch off by default (reported, as a warning)"),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions:
            for node in info.nodes:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(TRAIN_NAME.match(last_name(t) or "") for t in targets) and any(
                        isinstance(c, ast.Constant) and isinstance(c.value, str) and "fineweb_val_" in c.value
                        for c in ast.walk(node.value)
                    ):
                        self.report(node, "training file pattern names the validation split",
                                    evidence=[(node.lineno, ast.unparse(node)[:80])])
        loop = phases(facts).training_loop
        if loop is None:
            loop = _any_training_loop(facts)
        if loop is None:
            return
        flow = facts.flow_of(loop)
        batch_sources = {  # batches drawn where gradients flow: a no_grad validation diagnostic trains nothing
            n.func.value.id for n in ast.walk(loop)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "next_batch"
            and isinstance(n.func.value, ast.Name) and not _without_grad(n, loop, self.facts.graph.parents)
        }
        for name in sorted(batch_sources):
            for value in flow.defs.get(name, ()):
                if not isinstance(value, ast.Call):
                    continue
                labels = frozenset().union(*(self.facts.val_labels(a) for a in [*value.args,
                                                                                 *(k.value for k in value.keywords)]))
                if labels:
                    # the validation source may sit in one arm of a flag test (`val if TRAIN_ON_VAL else train`):
                    # its guards decide the severity like any other flag-guarded path
                    severity, guards = self.gated_severity([value, *guard_arms(labels)])
                    source = self.facts.evidence_of_labels(labels)
                    self.report(value, "training loader built on validation data", severity=severity,
                                evidence=[*([source] if source and source[0] else []),
                                          (value.lineno, f"`{name}` = {ast.unparse(value)[:60]}"),
                                          (loop.lineno, f"the training loop draws batches from `{name}`"), *guards])
                    return


def _without_grad(node: ast.AST, stop: ast.AST, parents: dict) -> bool:
    """True when NODE sits in a `with torch.no_grad()` / `torch.inference_mode()` block inside STOP."""
    parent = parents.get(node)
    while parent is not None and parent is not stop:
        if isinstance(parent, ast.With) and any(
            isinstance(item.context_expr, ast.Call) and last_name(item.context_expr.func) in ("no_grad", "inference_mode")
            for item in parent.items
        ):
            return True
        parent = parents.get(parent)
    return False


def _any_training_loop(facts) -> ast.AST | None:
    for info in facts.graph.functions:
        for loop in info.loops:
            calls = {last_name(n.func) for n in ast.walk(loop) if isinstance(n, ast.Call)}
            if {"backward", "step", "next_batch"} <= calls:
                return loop
    return None


def scan_text(path: str, text: str) -> list[tuple[int, str]]:
    """(line, note) for shell lines in a README or script that link/copy a val shard as a train shard (PR #44)."""
    out = []
    for match in _LINK_VAL_AS_TRAIN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        out.append((line, f"{path}: validation shard installed as a training shard: {match.group(0).strip()[:80]}"))
    return out

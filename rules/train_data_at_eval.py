"""TRAIN-DATA-AT-EVAL: training shards opened after the training loop with no time reserved for it."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import (
    guarded_severity,
    is_train_source,
    last_name,
    phases,
    script_facts,
    train_reader_classes,
)
from rules.base import Invalid, Rule, Valid

_COUNT_WRAPPERS = {"len", "sorted", "list", "log", "log0", "print"}


class TrainDataAtEval(Rule):
    """Flags training data read after the 600 s training loop (GPTQ calibration, n-gram oracles) with no reserve.

    Why: README FAQ: no access to training data during evaluation unless those bits are paid for in the 16 MB;
    #593 (calibration on train_files after a full 600 s loop) and #945 (a frozen oracle rebuilt from training
    shards at eval start) were rejected (README text + maintainer closures).

    Instead: subtract a GPTQ reserve from the wall-clock cap before the loop (``max_wallclock_ms -=
    gptq_reserve_seconds * 1e3``, as in #1855/#1868), calibrate on self-generated tokens, or store the statistics
    in the artifact.
    """

    ID = "TRAIN-DATA-AT-EVAL"
    CODE = "PG107"
    MESSAGE = "training data is read after the training loop ended, outside the timed training budget"
    VALID = [
        Valid(
            "def main(args, model, opt):\n"
            "    train_loader = DistributedTokenLoader(args.train_files)\n"
            "    max_wallclock_ms = 600000 - args.gptq_reserve_seconds * 1000\n"
            "    while elapsed() < max_wallclock_ms:\n"
            "        model(train_loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    calib_loader = DistributedTokenLoader(args.train_files)\n"
            "    collect_hessians(model, calib_loader)\n",
            name="GPTQ reserve subtracted from the cap before the loop",
        ),
        Valid(
            "def main(args, model, opt):\n"
            "    train_loader = DistributedTokenLoader(args.train_files)\n"
            "    while True:\n"
            "        model(train_loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    seqs = generate_autoregressive_calib(model)\n"
            "    n = len(glob.glob(args.train_files))\n"
            "    collect_hessians(model, seqs)\n",
            name="self-generated calibration; counting shards only",
        ),
    ]
    INVALID = [
        Invalid(
            "def main(args, model, opt):\n"
            "    train_loader = DistributedTokenLoader(args.train_files)\n"
            "    while True:\n"
            "        model(train_loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    calib_loader = DistributedTokenLoader(args.train_files)\n"
            "    collect_hessians(model, calib_loader)\n",
            expected_line=6,
            name="#593: calibration loader after a full loop",
        ),
        Invalid(
            "def build_oracle(pattern):\n"
            "    return [load_data_shard(f) for f in glob.glob(pattern)]\n"
            "def main(args, model, opt):\n"
            "    loader = DistributedTokenLoader(args.train_files)\n"
            "    for step in range(100):\n"
            "        model(loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    oracle = build_oracle(args.train_files)\n"
            "    return eval_val(model, oracle)\n",
            expected_line=8,
            name="#945: n-gram oracle filled from training shards at eval",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        phase = phases(facts)
        if phase.training_loop is None:
            return
        reserve = _reserve_subtraction(facts)
        if reserve is not None:
            return
        readers = train_reader_classes(facts)
        seen_lines: set[int] = set()
        candidates: list[ast.AST] = []
        for stmt in phase.post_statements:
            candidates.extend(ast.walk(stmt))
        for func in phase.post_functions:
            candidates.extend(facts.nodes_of(func))
        for node in candidates:
            if not isinstance(node, ast.Call) or node.lineno in seen_lines:
                continue
            if not self._reads_training_data(node, facts, readers):
                continue
            seen_lines.add(node.lineno)
            severity, guards = guarded_severity(self, node)
            loop = phase.training_loop
            self.report(
                node,
                severity=severity,
                evidence=[
                    (loop.lineno, f"training loop (lines {loop.lineno}-{loop.end_lineno}) ends before this"),
                    (node.lineno, f"training data read: `{ast.unparse(node)[:60]}`"),
                    (node.lineno, "no reserve is subtracted from the wall-clock cap for it"),
                    *guards,
                ],
            )

    @staticmethod
    def _reads_training_data(call: ast.Call, facts, readers: set[str]) -> bool:
        name = last_name(call.func)
        if name in _COUNT_WRAPPERS:
            return False
        parent = facts.parents.get(call)
        while isinstance(parent, (ast.Call, ast.Attribute, ast.Subscript)):
            if isinstance(parent, ast.Call) and last_name(parent.func) in _COUNT_WRAPPERS:
                return False  # counting or listing shards, not reading them
            parent = facts.parents.get(parent)
        if name in readers:
            return True
        return any(is_train_source(arg) for arg in [*call.args, *(k.value for k in call.keywords)])


def _reserve_subtraction(facts) -> ast.AST | None:
    """A subtraction of a reserve from the time cap (``max_wallclock_ms -= reserve``), anywhere in the script."""
    for info in facts.graph.functions:
        for node in info.nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Sub):
                operand = node.value
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
                operand = node.right
            else:
                continue
            if any("reserve" in (last_name(n) or "").lower() for n in ast.walk(operand)):
                return node
    return None

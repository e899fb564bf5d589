"""BYTE-MIXTURE-C2: a token's log-probability spread over its bytes and mixed with a byte-level model."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import LOOP_TYPES, guarded_severity, last_name, script_facts
from rules.base import Invalid, Rule, Valid


class ByteMixtureC2(Rule):
    """Flags per-token division of a log-probability by that token's byte length inside a per-token loop.

    Why: spreading the realized token's log-probability over its bytes and mixing per byte with a PPM-style model
    is not a normalized distribution over tokens (C2). Issue #1872; cocohearts excluded the PPM-D/byte-mixture rows
    in PR #1902 (maintainer ruling).

    Instead: mix at the token level over the whole vocabulary; divide total nats by total bytes only once, for
    the bpb conversion.
    """

    ID = "BYTE-MIXTURE-C2"
    CODE = "PG104"
    MESSAGE = "token log-probability spread over its bytes for a per-byte mixture: not a distribution over tokens"
    VALID = [
        Valid(
            "def bpb(loss_sum, byte_count):\n"
            "    return loss_sum / math.log(2) / byte_count\n",
            name="aggregate nats / bytes",
        ),
        Valid(
            "def per_token_bpb(nll, lut, ids):\n"
            "    out = []\n"
            "    for i, t in enumerate(ids):\n"
            "        out.append(nll[i])\n"
            "    return sum(out) / sum(len(lut[t]) for t in ids)\n",
            name="aggregate division after the loop",
        ),
    ]
    INVALID = [
        Invalid(
            "def mix(ids, logp, lut):\n"
            "    stream = []\n"
            "    for i, tid in enumerate(ids):\n"
            "        tb = lut[tid]\n"
            "        n_bytes = len(tb)\n"
            "        per_byte = logp[i] / n_bytes\n"
            "        for b in tb:\n"
            "            stream.append((b, per_byte))\n"
            "    return stream\n",
            expected_line=6,
            name="#1835 decoded shape",
        ),
        Invalid(
            "def spread(ids, logp, lut):\n"
            "    for i in range(len(ids)):\n"
            "        yield logp[i] / len(lut[ids[i]])\n",
            expected_line=3,
            name="inline length",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions:
            flow = None
            for node in info.nodes:
                if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
                    continue
                loops = list(facts.enclosing(node, LOOP_TYPES))
                if not loops:
                    continue
                flow = flow or facts.flow(info.node)
                loop_vars = {n.id for loop in loops if isinstance(loop, ast.For) for n in ast.walk(loop.target)
                             if isinstance(n, ast.Name)}
                length = _near_origin(node.right, flow, lambda n: _token_byte_length(n, flow, loop_vars))
                if length is None:
                    continue
                severity, guards = guarded_severity(self, node)
                self.report(node, severity=severity, evidence=[
                    (length.lineno, f"byte length of the token: `{ast.unparse(length)[:50]}`"),
                    (node.lineno, "per-token log-probability divided by it inside the token loop"),
                    *guards,
                ])
                break


def _near_origin(expr: ast.AST, flow, predicate) -> ast.AST | None:
    """A node satisfying PREDICATE in EXPR or in the direct definitions of the names it reads (one step)."""
    candidates = [expr] + [v for n in ast.walk(expr) if isinstance(n, ast.Name) for v in flow.defs.get(n.id, ())]
    for candidate in candidates:
        for sub in ast.walk(candidate):
            if predicate(sub):
                return sub
    return None


def _token_byte_length(node: ast.AST, flow, loop_vars: set[str]) -> bool:
    """``len(lut[token])`` (directly or through ``tb = lut[token]``): the byte string of one token."""
    if not (isinstance(node, ast.Call) and last_name(node.func) == "len" and len(node.args) == 1):
        return False
    arg = node.args[0]
    if isinstance(arg, ast.Name):
        values = flow.defs.get(arg.id, ())
        return bool(values) and all(_lut_lookup(v, loop_vars, flow) for v in values)
    return _lut_lookup(arg, loop_vars, flow)


def _lut_lookup(node: ast.AST, loop_vars: set[str], flow) -> bool:
    """``table[token_id]`` where the index is the per-token loop's variable (or ``ids[i]``)."""
    if not isinstance(node, ast.Subscript):
        return False
    index = node.slice
    if not isinstance(index, (ast.Name, ast.Subscript, ast.Call)):
        return False
    if isinstance(node.value, ast.Name) and node.value.id in loop_vars:
        return False  # windows[k]: an item of the iterated collection, not a table lookup
    return bool(flow.closure(index) & loop_vars)

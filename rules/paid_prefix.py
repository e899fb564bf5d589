"""PAID-PREFIX: validation tokens shipped in a blob and used to zero the loss of matching positions."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import guarded_severity, last_name, script_facts
from rules.base import Invalid, Rule, Valid

_BLOB_READS = {"read_bytes", "fromfile", "frombuffer", "decompress", "load"}


class PaidPrefix(Rule):
    """Flags scores multiplied by (or set to zero under) a mask comparing shipped tokens with the targets.

    Why: README FAQ names the "paid prefix" explicitly: the artifact may not carry validation content that the
    evaluation then uses (PRs #262, #275; README text).

    Instead: build the artifact from training data only; score every validation token with the model.
    """

    ID = "PAID-PREFIX"
    CODE = "PG109"
    MESSAGE = "loss zeroed where tokens stored in a shipped blob equal the targets (paid prefix)"
    VALID = [
        Valid(
            "def score(nll, y, pad_id):\n"
            "    mask = y != pad_id\n"
            "    nll = nll * mask\n"
            "    return nll.sum()\n",
            name="padding mask from a constant",
        ),
        Valid(
            "def load_luts(path):\n"
            "    return np.load(path)\n"
            "def count(path, y):\n"
            "    lut = load_luts(path)\n"
            "    return lut[y].sum()\n",
            name="byte LUT read from a file, no score masking",
        ),
    ]
    INVALID = [
        Invalid(
            "def load_paid_prefix(path):\n"
            "    raw = lzma.decompress(Path(path).read_bytes())\n"
            "    return torch.from_numpy(np.frombuffer(raw, dtype='<u2'))\n"
            "def score(nll, y, path):\n"
            "    prefix = load_paid_prefix(path)\n"
            "    match = prefix[: y.numel()] == y\n"
            "    nll *= (~match).float()\n"
            "    return nll.sum()\n",
            expected_line=7,
            name="#262 shape",
        ),
        Invalid(
            "def score(nll, y, blob):\n"
            "    stored = np.frombuffer(lzma.decompress(blob), dtype=np.uint16)\n"
            "    hit = torch.from_numpy(stored) == y\n"
            "    nll[hit] = 0.0\n"
            "    return nll.sum()\n",
            expected_line=4,
            name="zeroing by assignment",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        loaders = {f.name for info in facts.graph.functions[1:] for f in [info.node]
                   if {last_name(n.func) for n in info.nodes if isinstance(n, ast.Call)} & {"decompress"}
                   and {last_name(n.func) for n in info.nodes if isinstance(n, ast.Call)} & {"frombuffer", "fromfile"}}
        for info in facts.graph.functions:
            flow = None
            for node in info.nodes:
                zeroed = _zeroing_mask(node)
                if zeroed is None:
                    continue
                flow = flow or facts.flow(info.node)
                compare = flow.find_origin(zeroed, lambda n: isinstance(n, ast.Compare) and isinstance(n.ops[0], ast.Eq))
                if compare is None:
                    continue
                blob = flow.find_origin(compare, lambda n: isinstance(n, ast.Call) and (
                    last_name(n.func) in loaders or last_name(n.func) in ("frombuffer", "fromfile")))
                if blob is None:
                    blob = _blob_passed_in(info, compare, flow, facts, loaders)
                if blob is None:
                    continue
                severity, guards = guarded_severity(self, node)
                self.report(node, severity=severity, evidence=[
                    (blob.lineno, f"tokens loaded from a shipped blob: `{ast.unparse(blob)[:50]}`"),
                    (compare.lineno, "compared with the targets"),
                    (node.lineno, "loss of matching positions set to zero"),
                    *guards,
                ])


def _blob_passed_in(info, compare, flow, facts, loaders) -> ast.AST | None:
    """A loader call elsewhere whose result is passed into this function's parameter used in the comparison."""
    used_params = set(info.params) & flow.closure(compare)
    if not used_params or not loaders:
        return None
    for caller, call in info.call_sites or []:
        caller_flow = facts.flow(caller.node)
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            hit = caller_flow.find_origin(arg, lambda n: isinstance(n, ast.Call) and last_name(n.func) in loaders)
            if hit is not None:
                return hit
    return None


def _zeroing_mask(node: ast.AST) -> ast.AST | None:
    """The mask in ``x *= ~m`` / ``x = x * ~m`` / ``x[m] = 0``, else None."""
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Mult):
        return node.value
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
        if isinstance(node.value, ast.Constant) and node.value.value in (0, 0.0):
            return node.targets[0].slice
    return None

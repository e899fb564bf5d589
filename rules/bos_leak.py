"""BOS-LEAK: token mixing across positions (smear gates, token shifts, rolls, time convolutions) with no
document-boundary mask."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import guarded_severity, script_facts
from rules.analysis.graph import last_name
from rules.base import Invalid, Rule, Valid


class BosLeak(Rule):
    """Flags ``x[:, 1:] + g * x[:, :-1]``-style mixing of the previous position with no BOS mask: slices, shifted
    copies (``torch.cat``/``F.pad`` then ``[:, :-1]``, ``torch.roll(x, 1, 1)``), and convolutions over time with a
    kernel longer than one (``nn.Conv1d``, ``F.conv1d``) in a module with no boundary mask or ``cu_seqlens``.

    Why: in packed evaluation batches the previous position of a document's first token is the last token of the
    previous document, so the mix carries document N into document N+1. cocohearts' audit of PR #1797 (2026-04-26)
    refused it; #1851 and #1855 were merged with the fix (maintainer audit). A static match is a warning; the
    two-document probe makes it an error.

    Instead: multiply the previous-token term by a mask such as ``not_bos = (input_ids[:, 1:] != BOS_ID)``, in
    every forward that mixes positions (the normal and the TTT forward).
    """

    ID = "BOS-LEAK"
    CODE = "PG112"
    MESSAGE = "previous-token mixing without a document-boundary (BOS) mask leaks across packed documents"
    VALID = [
        Valid(
            "def forward(self, x, input_ids, g):\n"
            "    not_bos = (input_ids[:, 1:] != BOS_ID).unsqueeze(-1)\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1] * not_bos], dim=1)\n",
            name="BOS-masked smear (merged #1855)",
        ),
        Valid(
            "def forward(self, x, input_ids, g):\n"
            "    bos_mask = (input_ids[:, 1:] != 1).unsqueeze(-1)\n"
            "    g = g * bos_mask\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)\n",
            name="mask folded into the gate",
        ),
        Valid(
            "def loss(logits, tokens):\n"
            "    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())\n",
            name="next-token loss alignment is not mixing",
        ),
        Valid(
            "def forward(self, x, input_ids, g):\n"
            "    keep = (input_ids != BOS_ID).unsqueeze(-1)\n"
            "    return x + g * torch.roll(x, 1, 1) * keep\n",
            name="rolled copy masked at document starts",
        ),
        Valid(
            "class LocalConv(nn.Module):\n"
            "    def __init__(self, dim):\n"
            "        self.conv = nn.Conv1d(dim, dim, 4, groups=dim)\n"
            "    def forward(self, x, cu_seqlens):\n"
            "        return causal_conv1d(x, self.conv.weight, cu_seqlens=cu_seqlens)\n",
            name="time convolution that honours document boundaries (cu_seqlens)",
        ),
        Valid(
            "class Proj(nn.Module):\n"
            "    def __init__(self, dim):\n"
            "        self.mix = nn.Conv1d(dim, dim, kernel_size=1)\n",
            name="pointwise (kernel 1) convolution mixes channels, not positions",
        ),
    ]
    INVALID = [
        Invalid(
            "def forward(self, x, g):\n"
            "    return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)\n",
            expected_line=2,
            name="unmasked smear gate (#1797 before the fix)",
        ),
        Invalid(
            "def forward(self, x, g):\n"
            "    x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)\n"
            "    return (1 - g) * x + g * x_prev\n",
            expected_line=3,
            name="early SmearGate form (shifted copy)",
        ),
        Invalid(
            "def forward(self, x, mix):\n"
            "    prev = x[:, :-1]\n"
            "    cur = x[:, 1:]\n"
            "    return cur + mix * (prev - cur)\n",
            expected_line=4,
            name="token shift through names",
        ),
        Invalid(
            "def forward(self, x, g):\n"
            "    return x + g * torch.roll(x, shifts=1, dims=1)\n",
            expected_line=2,
            name="rolled copy (the first position even sees the last token of the batch row)",
        ),
        Invalid(
            "def forward(self, h, g):\n"
            "    return h + g * F.pad(h, (0, 0, 1, 0))[:, :-1]\n",
            expected_line=2,
            name="padded shift inline",
        ),
        Invalid(
            "class LocalConv(nn.Module):\n"
            "    def __init__(self, dim, kernel):\n"
            "        self.conv = nn.Conv1d(dim, dim, kernel, padding=0, groups=dim)\n"
            "    def forward(self, x):\n"
            "        return self.conv(F.pad(x.transpose(1, 2), (3, 0))).transpose(1, 2)\n",
            expected_line=3,
            name="causal depthwise convolution over packed documents",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        self._time_convolutions(facts)
        for info in facts.graph.functions:
            flow = None
            for node in info.nodes:
                if not (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub))):
                    continue
                if isinstance(facts.parents.get(node), ast.BinOp) and isinstance(facts.parents[node].op, (ast.Add, ast.Sub)):
                    continue  # judge the outermost sum once
                flow = flow or facts.flow(info.node)
                shifted = _shift_pair(node, flow)
                if shifted is None:
                    continue
                if _masked(node, flow):
                    continue
                severity, guards = guarded_severity(self, node)
                self.report(node, severity=severity, evidence=[
                    (shifted.lineno, f"previous position `{ast.unparse(shifted)}` mixed into the current one"),
                    (node.lineno, "no mask derived from a BOS / document-boundary comparison"),
                    *guards,
                ])

    def _time_convolutions(self, facts) -> None:
        """Convolutions over time with a kernel longer than one, in a class (or function) with no equality mask and
        no ``cu_seqlens``: each output position mixes the previous kernel - 1 positions, across documents."""
        for node in ast.walk(self.context.tree):
            if not (isinstance(node, ast.Call) and last_name(node) in ("Conv1d", "conv1d")):
                continue
            kernel = _kernel_size(node)
            if isinstance(kernel, ast.Constant) and kernel.value == 1:
                continue
            scope = _enclosing_class(node, facts.parents) or facts.enclosing_function(node)
            if any(isinstance(n, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in n.ops)
                   for n in ast.walk(scope)) or "cu_seqlens" in {getattr(n, "id", getattr(n, "arg", None))
                                                                 for n in ast.walk(scope)}:
                continue
            severity, guards = guarded_severity(self, node)
            shown = ast.unparse(kernel) if kernel is not None else "?"
            self.report(node, "a convolution over time (kernel " + shown + ") mixes each position with the ones "
                        "before it, with no document-boundary (BOS) mask or cu_seqlens: it leaks across packed "
                        "documents", severity=severity, evidence=[
                            (node.lineno, f"`{ast.unparse(node)[:80]}`"), *guards])


def _enclosing_class(node: ast.AST, parents: dict) -> ast.ClassDef | None:
    """The class whose body (methods included) holds NODE: the module that owns the convolution."""
    current = parents.get(node)
    while current is not None and not isinstance(current, ast.ClassDef):
        current = parents.get(current)
    return current


def _kernel_size(call: ast.Call) -> ast.AST | None:
    """The kernel-size argument: ``kernel_size=`` or the third positional argument of nn.Conv1d; the weight
    (second positional) of F.conv1d, whose size is not known statically."""
    for kw in call.keywords:
        if kw.arg == "kernel_size":
            return kw.value
    if last_name(call) == "Conv1d":
        return call.args[2] if len(call.args) > 2 else None
    return call.args[1] if len(call.args) > 1 else None


def _time_slice(sub: ast.AST) -> str | None:
    """"prev" for ``x[:, :-1]``, "cur" for ``x[:, 1:]`` (second axis), else None."""
    if not (isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Tuple) and len(sub.slice.elts) >= 2):
        return None
    first, second = sub.slice.elts[0], sub.slice.elts[1]
    if not (isinstance(first, ast.Slice) and first.lower is None and first.upper is None):
        return None
    if not isinstance(second, ast.Slice) or second.step is not None:
        return None
    if second.lower is None and _is_const(second.upper, -1):
        return "prev"
    if _is_const(second.lower, 1) and second.upper is None:
        return "cur"
    return None


def _is_const(node: ast.AST | None, value: int) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return node.operand.value == -value
    return isinstance(node, ast.Constant) and node.value == value


def _slices(expr: ast.AST, flow) -> list[tuple[str, str, ast.Subscript]]:
    """Time slices in EXPR, and in names defined directly as a shifted copy (``prev = x[:, :-1]`` or
    ``x_prev = torch.cat([zeros, x[:, :-1]], 1)``, which lines up the previous token with the current one)."""
    out = []
    for sub in ast.walk(expr):
        kind = _time_slice(sub)
        shifted = _shifted_copy(sub)
        if kind == "prev" and isinstance(sub.value, ast.Call) and last_name(sub.value) == "pad" and sub.value.args:
            out.append(("prev_full", ast.unparse(sub.value.args[0]), sub))  # F.pad(h, (.., 1, 0))[:, :-1]
        elif kind:
            out.append((kind, ast.unparse(sub.value), sub))
        elif shifted is not None:
            out.append(("prev_full", ast.unparse(shifted), sub))
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            for value in flow.defs.get(sub.id, ()):
                kind = _time_slice(value)
                if kind:
                    out.append((kind, ast.unparse(value.value), value))
                elif isinstance(value, ast.Call) and last_name(value) in ("cat", "pad") and not any(
                    _time_slice(inner) == "cur" for inner in ast.walk(value)
                ):
                    for inner in ast.walk(value):
                        if _time_slice(inner) == "prev":
                            out.append(("prev_full", ast.unparse(inner.value), inner))
    return out


def _shifted_copy(node: ast.AST) -> ast.AST | None:
    """The tensor rolled by one step along time in ``torch.roll(x, 1, 1)`` / ``x.roll(shifts=1, dims=1)``."""
    if not (isinstance(node, ast.Call) and last_name(node) == "roll"):
        return None
    method = isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                           and node.func.value.id == "torch")
    args = list(node.args)
    tensor = node.func.value if method else (args.pop(0) if args else None)
    named = {kw.arg: kw.value for kw in node.keywords}
    shifts = named.get("shifts", args[0] if args else None)
    dims = named.get("dims", args[1] if len(args) > 1 else None)
    if tensor is None or not _is_const(shifts, 1) or not (_is_const(dims, 1) or _is_const(dims, -2)):
        return None
    return tensor


def _shift_pair(node: ast.BinOp, flow) -> ast.Subscript | None:
    """The ``x[:, :-1]`` term when NODE adds it to the current positions of the same tensor, else None."""
    found = _slices(node, flow)
    curs = {base for kind, base, _ in found if kind == "cur"}
    direct = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for kind, base, sub in found:
        if kind == "prev" and base in curs:
            return sub
        if kind == "prev_full" and base in direct:
            return sub
    return None


def _masked(node: ast.AST, flow) -> bool:
    """True when a name the expression depends on is defined by an (in)equality test: a boundary mask."""
    def is_mask(n: ast.AST) -> bool:
        return isinstance(n, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in n.ops)
    return flow.find_origin(node, is_mask) is not None

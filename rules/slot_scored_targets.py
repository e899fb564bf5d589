"""SLOT-SCORED-TARGETS: per-batch tensors optimised on the very targets that are scored right after."""

from __future__ import annotations

import ast
import re

from rules.analysis.dataflow import guarded_severity, last_name, script_facts
from rules.analysis.passes import printed_at
from rules.base import Invalid, LogHints, Rule, Valid

_LOSS_CALLS = {"cross_entropy", "nll_loss", "_loss_fn", "log_softmax"}


# A bias fitted by hand on each batch's targets, run through a timing wrapper that prints under a label.
_WRAPPED = (
    "def fit_and_score(model, windows):\n"
    "    total = 0.0\n"
    "    for x, y in windows:\n"
    "        z = model(x).float()\n"
    "        b = torch.zeros(z.size(-1))\n"
    "        for _ in range(3):\n"
    "            b = b - 0.1 * (torch.softmax(z + b, -1) - F.one_hot(y, z.size(-1))).mean(dim=(0, 1))\n"
    "        total += F.cross_entropy((z + b).flatten(0, 1), y.flatten(), reduction='sum')\n"
    "    return total\n"
    "\n"
    "\n"
    "def timed(label, fn, *args):\n"
    "    value = fn(*args)\n"
    "    print(f'{label} val_nll:{value:.6f}')\n"
    "\n"
    "\n"
    "def main(model, windows):\n"
    "    timed('plain_eval', plain, model, windows)\n"
    "    timed('quant_fitted', fit_and_score, model, windows)\n"
)


class SlotScoredTargets(Rule):
    """Flags SLOT: a per-batch delta or logit bias fitted to a batch's targets, then used to score those targets.

    The fit is recognised by effect, in either shape: a ``requires_grad=True`` tensor optimised by a backward pass on
    a loss over targets T; or, inside the loop over batches, an inner loop that steps a tensor from itself and from
    T by a hand-written gradient. Either way the later loss on T (any slice of the same variable) uses the fitted
    tensor in its logits.

    Why: the prediction at t then depends on x_t and later tokens of the window (C1/C3); PR #1240's flip-one-target
    test changes the NLL at every scored position. Community ruling (MatoTeziTanka on #1376, Bortlesboat on #1321);
    no SLOT submission was ever merged. A static match is a warning; it is an error when the claimed score is printed
    from the fitted pass (rulebook: the logs show the reported score came from the SLOT path), and the flip-target
    probe makes it an error too.

    Instead: optimise eval-time parameters only on tokens scored in earlier windows and use them only for later
    positions (score-first TTT).
    """

    ID = "SLOT-SCORED-TARGETS"
    CODE = "PG103"
    MESSAGE = "per-batch delta optimised on the targets it then scores (SLOT): the score at t depends on x_t"
    VALID = [
        Valid(
            "def ttt(model, chunks, opt):\n"
            "    for x, y in chunks:\n"
            "        with torch.no_grad():\n"
            "            loss_sum += F.cross_entropy(model(x), y, reduction='sum')\n"
            "        loss = F.cross_entropy(model(x), y)\n"
            "        loss.backward()\n"
            "        opt.step()\n",
            name="score-first TTT: scored before the update",
        ),
        Valid(
            "def slot_ctx(hidden, w, y_prev, y_cur, steps):\n"
            "    delta = torch.zeros(1, 1, hidden.size(-1), requires_grad=True)\n"
            "    opt = torch.optim.AdamW([delta], lr=0.01)\n"
            "    for _ in range(steps):\n"
            "        loss = F.cross_entropy(F.linear(hidden + delta, w), y_prev)\n"
            "        loss.backward()\n"
            "        opt.step()\n"
            "    return F.cross_entropy(F.linear(hidden + delta, w), y_cur)\n",
            name="delta fitted on earlier targets only, used for new ones",
        ),
        Valid(
            "def eval_bias_causal(model, windows, steps, lr):\n"
            "    total = 0.0\n"
            "    bias = torch.zeros(1024)\n"
            "    for x, y in windows:\n"
            "        with torch.no_grad():\n"
            "            z = model(x).float()\n"
            "        total += F.cross_entropy((z + bias).flatten(0, 1), y.flatten(), reduction='sum')\n"
            "        for _ in range(steps):\n"
            "            p = torch.softmax(z + bias, dim=-1)\n"
            "            hot = torch.zeros_like(p)\n"
            "            hot.scatter_(-1, y.unsqueeze(-1), 1.0)\n"
            "            bias = bias - lr * (p - hot).mean(dim=(0, 1))\n"
            "    return total\n",
            name="bias stepped by hand on a batch only after that batch is scored (used for later batches)",
        ),
        Valid(
            "def eval_centred(model, windows, steps):\n"
            "    total = 0.0\n"
            "    for x, y in windows:\n"
            "        z = model(x).float()\n"
            "        for _ in range(steps):\n"
            "            z = z - 0.5 * z.mean(dim=-1, keepdim=True)\n"
            "        total += F.cross_entropy(z.flatten(0, 1), y.flatten(), reduction='sum')\n"
            "    return total\n",
            name="near-miss: logits reshaped in an inner loop without reading the targets",
        ),
    ]
    INVALID = [
        Invalid(
            "def slot(hidden, w, y, steps):\n"
            "    delta = torch.zeros(1, 1, hidden.size(-1), requires_grad=True)\n"
            "    opt = torch.optim.AdamW([delta], lr=0.01)\n"
            "    for _ in range(steps):\n"
            "        loss = F.cross_entropy(F.linear(hidden + delta, w), y)\n"
            "        opt.zero_grad()\n"
            "        loss.backward()\n"
            "        opt.step()\n"
            "    with torch.no_grad():\n"
            "        nll = F.cross_entropy(F.linear(hidden + delta, w), y, reduction='none')\n"
            "    return nll.sum()\n",
            expected_line=10,
            name="PR #1229 shape",
        ),
        Invalid(
            "def eval_slot(h, proj, y_batch, n):\n"
            "    bias = torch.zeros(1, 1, 1024, requires_grad=True)\n"
            "    opt = torch.optim.SGD([bias], lr=0.1)\n"
            "    targets = y_batch.reshape(-1)\n"
            "    for step in range(n):\n"
            "        logits = (proj(h) + bias).reshape(-1, 1024)\n"
            "        F.cross_entropy(logits, targets).backward()\n"
            "        opt.step()\n"
            "    logits = (proj(h) + bias).reshape(-1, 1024)\n"
            "    return F.cross_entropy(logits, targets, reduction='sum')\n",
            expected_line=10,
            name="logit bias, loss backward inline",
        ),
        Invalid(
            "def eval_bias_fit(model, windows, steps, lr, ctx):\n"
            "    total = 0.0\n"
            "    bias = torch.zeros(1024)\n"
            "    for x, y in windows:\n"
            "        with torch.no_grad():\n"
            "            z = model(x).float()\n"
            "        b = bias.clone()\n"
            "        for _ in range(steps):\n"
            "            p = torch.softmax(z[:, :ctx] + b, dim=-1)\n"
            "            hot = torch.zeros_like(p)\n"
            "            hot.scatter_(-1, y[:, :ctx].unsqueeze(-1), 1.0)\n"
            "            b = b - lr * (p - hot).mean(dim=(0, 1))\n"
            "        bias = b\n"
            "        total += F.cross_entropy((z + bias).flatten(0, 1), y.flatten(), reduction='sum')\n"
            "    return total\n",
            expected_line=14,
            name="evasion: a logit bias stepped by a hand-written gradient on the batch's own targets (no autograd)",
        ),
        Invalid(
            "def eval_bias_fit(model, windows, steps, lr):\n"
            "    total = 0.0\n"
            "    for x, y in windows:\n"
            "        z = model(x).float()\n"
            "        b = torch.zeros(z.size(-1))\n"
            "        for _ in range(steps):\n"
            "            b -= lr * (torch.softmax(z + b, -1) - F.one_hot(y, z.size(-1))).mean(dim=(0, 1))\n"
            "        total += F.cross_entropy((z + b).flatten(0, 1), y.flatten(), reduction='sum')\n"
            "    return total\n"
            "\n"
            "\n"
            "def main(model, windows):\n"
            "    nll = eval_bias_fit(model, windows, 4, 0.1)\n"
            "    print(f'final_bias_fit val_nll:{nll:.6f}')\n",
            expected_line=8,
            expected_severity="error",
            name="the claimed line is printed from the fitted pass: an error",
            log_hints=LogHints(claimed=("final_bias_fit val_nll:1.234567",)),
        ),
        Invalid(_WRAPPED, expected_line=8, expected_severity="error",
                name="the fitted pass handed to a timing wrapper that prints the claimed line under its label",
                log_hints=LogHints(claimed=("quant_fitted val_nll:1.234567",))),
        Invalid(_WRAPPED, expected_line=8, expected_severity="warning",
                name="near-miss: the claimed line is the plain pass's label; the fitted pass stays a warning",
                log_hints=LogHints(claimed=("plain_eval val_nll:1.234567",))),
        Invalid(
            "def slot_slices(hidden, w, y, steps, ctx):\n"
            "    delta = torch.zeros(1, 1, hidden.size(-1), requires_grad=True)\n"
            "    opt = torch.optim.AdamW([delta], lr=0.01)\n"
            "    for _ in range(steps):\n"
            "        loss = F.cross_entropy(F.linear(hidden[:, :ctx] + delta, w).flatten(0, 1), y[:, :ctx].flatten())\n"
            "        opt.zero_grad()\n"
            "        loss.backward()\n"
            "        opt.step()\n"
            "    with torch.no_grad():\n"
            "        return F.cross_entropy(F.linear(hidden + delta, w).flatten(0, 1), y.flatten())\n",
            expected_line=10,
            name="evasion: optimised on a slice of the targets, scored on the whole tensor",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions[1:]:
            flow = facts.flow(info.node)
            hit = _autograd_fit(info, flow) or _explicit_fit(info, flow)
            if hit is None:
                continue
            score, fitted_line, how, target = hit
            severity, guards = guarded_severity(self, score)
            claim = _claim_printed_from(facts, info, self.log_hints.claimed)
            if claim is not None and severity == "warning" and not any("off by" in note for _, note in guards):
                severity = "error"
                guards = [*guards, (claim, "prints the claimed score from this scoring")]
            self.report(
                score,
                severity=severity,
                evidence=[
                    (fitted_line, f"{how} against targets `{ast.unparse(target)[:40]}`"),
                    (score.lineno, "the same batch's targets scored with the fitted tensor"),
                    *guards,
                ],
            )


def _autograd_fit(info, flow) -> tuple[ast.Call, int, str, ast.AST] | None:
    """A requires_grad tensor optimised by backward on a loss over targets T, then used to score T after the loop."""
    deltas = _requires_grad_tensors(info.nodes)
    if not deltas:
        return None
    for loop in info.loops:
        for loss_call, backward in _optimised_losses(loop, flow, deltas):
            target = _target_of(loss_call)
            if target is None:
                continue
            score = _later_score(info.nodes, loop, flow, deltas.keys(), _root(target))
            if score is not None:
                how = f"per-batch tensor (requires_grad, line {min(deltas.values())}) optimised"
                return score, backward.lineno, how, target
    return None


def _explicit_fit(info, flow) -> tuple[ast.Call, int, str, ast.AST] | None:
    """Inside a loop over batches: an inner loop that updates a tensor B from itself and from targets T (a hand-written
    gradient step, no autograd), then, after that inner loop and in the same batch, a loss on T whose logits use B."""
    for outer in info.loops:
        for inner in (n for n in ast.walk(outer) if n is not outer and isinstance(n, (ast.For, ast.While))):
            for node in ast.walk(inner):
                fitted = _self_update(node)
                if fitted is None:
                    continue
                name, value = fitted
                deps = flow.closure(value)
                body = [n for n in ast.walk(outer) if getattr(n, "lineno", 0) > inner.end_lineno]
                for score in body:
                    if not _is_loss(score):
                        continue
                    target = _target_of(score)
                    root = _root(target) if target is not None else None
                    if root is None or root == name or root not in deps:
                        continue
                    if name in flow.closure(score.args[0]):
                        return score, node.lineno, f"`{name}` updated from itself in a loop", target
    return None


def _self_update(node: ast.AST) -> tuple[str, ast.AST] | None:
    """(B, the new value) for `B = f(B, ...)` or `B -= v` on a plain name."""
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.value)):
            return name, node.value
    return None


def _is_loss(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and last_name(node.func) in _LOSS_CALLS and len(node.args) >= 2


def _root(node: ast.AST) -> str | None:
    """The variable a target expression reads: `y` of `y`, `y[:, s:]`, `y.reshape(-1)`, `y[:, :c].reshape(-1)`."""
    while True:
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            break
    return node.id if isinstance(node, ast.Name) else None


def _claim_printed_from(facts, info, claimed: tuple[str, ...]) -> int | None:
    """The line of a print that writes a claimed output line from a run of INFO: INFO called, or handed as an
    argument to a function that calls it (`timed_eval("label", fn, ...)`), and the lines that leads to printing."""
    if not claimed:
        return None
    for caller in facts.graph.functions:
        for call in (n for n in caller.nodes if isinstance(n, ast.Call)):
            if not _runs(facts, caller, call, info):
                continue
            for printed in printed_at(facts, caller, call):
                if any(re.search(printed.pattern, line) for line in claimed):
                    return printed.stmt.lineno
    return None


def _runs(facts, caller, call: ast.Call, info) -> bool:
    """Whether CALL (in CALLER) calls INFO's function or hands it over as an argument."""
    resolved = facts.graph.resolved.get(call)
    if resolved is not None and resolved[0] is info:
        return True
    for arg in call.args:
        if isinstance(arg, ast.Name):
            passed = facts.graph.resolve(ast.Call(func=arg, args=[], keywords=[]), caller)
            if passed is not None and passed[0] is info:
                return True
    return False


def _requires_grad_tensors(nodes: list[ast.AST]) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in nodes:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            wants_grad = any(
                k.arg == "requires_grad" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in call.keywords
            ) or last_name(call.func) == "requires_grad_"
            if wants_grad:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = node.lineno
    return out


def _optimised_losses(loop: ast.AST, flow, deltas: dict[str, int]):
    """(loss call, backward call) pairs in LOOP whose loss depends on a per-batch requires_grad tensor."""
    for node in ast.walk(loop):
        if isinstance(node, ast.Call) and last_name(node.func) == "backward" and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if not flow.closure(receiver) & deltas.keys():
                continue
            loss_call = flow.find_origin(
                receiver, lambda n: isinstance(n, ast.Call) and last_name(n.func) in _LOSS_CALLS and len(n.args) >= 2
            )
            if loss_call is not None:
                yield loss_call, node


def _target_of(call: ast.Call) -> ast.AST | None:
    for keyword in call.keywords:
        if keyword.arg in ("target", "targets"):
            return keyword.value
    return call.args[1] if len(call.args) >= 2 else None


def _later_score(nodes, loop, flow, deltas, root: str | None) -> ast.Call | None:
    """A loss after LOOP on targets read from the same variable ROOT, whose logits use an optimised tensor."""
    if root is None:
        return None
    for node in nodes:
        if _is_loss(node) and node.lineno > loop.end_lineno:
            other = _target_of(node)
            if other is not None and _root(other) == root and flow.closure(node.args[0]) & set(deltas):
                return node
    return None

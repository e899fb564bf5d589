"""SLOT-SCORED-TARGETS: per-batch tensors optimised on the very targets that are scored right after."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import guarded_severity, last_name, script_facts
from rules.base import Invalid, Rule, Valid

_LOSS_CALLS = {"cross_entropy", "nll_loss", "_loss_fn", "log_softmax"}


class SlotScoredTargets(Rule):
    """Flags SLOT: a ``requires_grad=True`` delta or logit bias optimised against a batch's targets, then scored on them.

    Why: the prediction at t then depends on x_t and later tokens of the window (C1/C3); PR #1240's flip-one-target
    test changes the NLL at every scored position. Community ruling (MatoTeziTanka on #1376, Bortlesboat on #1321);
    no SLOT submission was ever merged. A static match is a warning; the flip-target probe makes it an error.

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
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions[1:]:
            deltas = _requires_grad_tensors(info.nodes)
            if not deltas:
                continue
            flow = facts.flow(info.node)
            for loop in info.loops:
                for loss_call, backward in _optimised_losses(loop, flow, deltas):
                    target = _target_of(loss_call)
                    if target is None:
                        continue
                    score = _later_score(info.nodes, loop, flow, deltas, target)
                    if score is None:
                        continue
                    severity, guards = guarded_severity(self, score)
                    delta_line = min(deltas.values())
                    self.report(
                        score,
                        severity=severity,
                        evidence=[
                            (delta_line, "per-batch tensor created with requires_grad=True"),
                            (backward.lineno, f"optimised against targets `{ast.unparse(target)[:40]}`"),
                            (score.lineno, "the same targets scored with the optimised tensor"),
                            *guards,
                        ],
                    )
                    break
                else:
                    continue
                break


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


def _later_score(nodes, loop, flow, deltas, target) -> ast.Call | None:
    """A loss on the same targets, after LOOP, that uses the optimised tensor."""
    wanted = ast.unparse(target)
    for node in nodes:
        if (
            isinstance(node, ast.Call)
            and node.lineno > loop.end_lineno
            and last_name(node.func) in _LOSS_CALLS
            and len(node.args) >= 2
        ):
            other = _target_of(node)
            if other is not None and ast.unparse(other) == wanted and flow.closure(node.args[0]) & deltas.keys():
                return node
    return None

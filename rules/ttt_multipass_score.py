"""TTT-MULTIPASS-SCORE: an epoch loop that repeats score-then-train passes over the same validation tokens."""

from __future__ import annotations

import ast

from rules.analysis.flags import FlagEvaluator
from rules.base import Invalid, LogHints, Rule, Valid
from rules.parsing import FSTRING_CALL

_MULTIPASS = '''import torch
def eval_ttt(model, opt, val_tokens, epochs):
    loss_sum = 0.0
    for epoch in range(epochs):
        loss_sum = 0.0
        for i in range(0, val_tokens.numel() - 1024, 1024):
            x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
            with torch.no_grad():
                loss_sum += model(x, y).item()
            model(x, y).backward()
            opt.step()
    return loss_sum
print(eval_ttt(torch.nn.Linear(4, 4), None, torch.load("fineweb_val_000000.bin"), 3))
'''

_LEGAL = '''import torch
def eval_ttt(model, opt, val_tokens, epochs):
    loss_sum = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        with torch.no_grad():
            loss_sum += model(x, y).item()
        for epoch in range(epochs):
            model(x, y).backward()
            opt.step()
    return loss_sum
print(eval_ttt(torch.nn.Linear(4, 4), None, torch.load("fineweb_val_000000.bin"), 3))
'''

_PER_DOC = '''import torch
def eval_lora(model, val_tokens, docs):
    loss_sum = 0.0
    for start, end in docs:
        lora = torch.nn.Linear(4, 4)
        opt = torch.optim.Adam(lora.parameters())
        for c in range(start, end, 256):
            x, y = val_tokens[c:c + 256], val_tokens[c + 1:c + 257]
            with torch.no_grad():
                loss_sum += model(x, y, lora).item()
            model(x, y, lora).backward()
            opt.step()
    return loss_sum
val_tokens = torch.load("fineweb_val_000000.bin")
print(eval_lora(torch.nn.Linear(4, 4), val_tokens, [(0, len(val_tokens))]))
'''

_LOGGED_EPOCHS = '''import torch
def eval_val_ttt_epochs(model, val_tokens, seq_len, epochs, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for epoch in range(epochs):
        loss_sum, token_count = 0.0, 0
        for i in range(0, val_tokens.numel() - seq_len - 1, seq_len):
            chunk = val_tokens[i:i + seq_len + 1]
            with torch.no_grad():
                loss_sum += model(chunk[:-1], chunk[1:]).item() * seq_len
                token_count += seq_len
            loss = model(chunk[:-1], chunk[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"ttt_epoch:{epoch + 1}/{epochs} val_loss:{loss_sum / token_count:.4f}")
    return loss_sum / token_count
print(eval_val_ttt_epochs(torch.nn.Linear(4, 4), torch.load("fineweb_val_000000.bin"), 1024, 3, 1e-4))
'''

_EPOCH_SELECTS_SHARD = '''import torch
def eval_ttt(model, opt, val_tokens, epochs):
    loss_sum = 0.0
    for epoch in range(epochs):
        shard = val_tokens.chunk(epochs)[epoch]
        for i in range(0, shard.numel() - 1024, 1024):
            x, y = shard[i:i + 1024], shard[i + 1:i + 1025]
            with torch.no_grad():
                loss_sum += model(x, y).item()
            model(x, y).backward()
            opt.step()
        print(f"epoch {epoch}: {loss_sum}")
    return loss_sum
print(eval_ttt(torch.nn.Linear(4, 4), None, torch.load("fineweb_val_000000.bin"), 3))
'''


# A training loop with a periodic validation check that reuses the batch names: the training step reads the
# training batch defined just before it, so the loop never trains on what it scores.
_TRAIN_LOOP_PERIODIC_EVAL = '''import torch
def train(model, opt, loader, steps, every):
    for step in range(steps):
        x, y = loader.next_batch()
        loss = model(x, y)
        loss.backward()
        opt.step()
        if step % every == 0:
            held = torch.load("fineweb_val_000000.bin")
            total = 0.0
            for i in range(0, held.numel() - 1024, 1024):
                x, y = held[i:i + 1024], held[i + 1:i + 1025]
                with torch.no_grad():
                    total += model(x, y).item()
            print(f"step:{step} val_loss:{total}")
train(torch.nn.Linear(4, 4), None, None, 10, 5)
'''

# The near-miss: on scoring steps the training step reads the validation window the branch just scored.
_TRAIN_LOOP_TRAINS_ON_EVAL = '''import torch
def train(model, opt, loader, steps, every):
    held = torch.load("fineweb_val_000000.bin")
    total = 0.0
    for step in range(steps):
        if step % every == 0:
            x, y = held[:1024], held[1:1025]
            with torch.no_grad():
                total += model(x, y).item()
        else:
            x, y = loader.next_batch()
        loss = model(x, y)
        loss.backward()
        opt.step()
    return total
print(train(torch.nn.Linear(4, 4), None, None, 10, 5))
'''


# The epoch count comes from the environment; by default the loop runs once (each token scored once, then trained).
_ENV_EPOCHS = "import os\n" + _MULTIPASS.replace(
    "def eval_ttt(model, opt, val_tokens, epochs):",
    'TTT_EPOCHS = int(os.environ.get("TTT_EPOCHS", "1"))\ndef eval_ttt(model, opt, val_tokens):').replace(
    "range(epochs)", "range(TTT_EPOCHS)").replace('.bin"), 3))', '.bin")))')

class MultipassScore(Rule):
    """Flags an outer loop over epochs (its counter never selects which validation tokens are read) that encloses
    both the scoring of validation tokens and training on them, so epoch 2 onwards scores tokens already trained on.

    Why: valerio-oai on PR #568 (multi-epoch TTT counts as training on eval data) and the #677 clarification
    (maintainer ruling; #1017 C3/C4).

    Instead: put the epoch loop inside the per-chunk train phase, after the chunk's single scoring (#549).
    """

    ID = "TTT-MULTIPASS-SCORE"
    CODE = "PG202"
    MESSAGE = "Multi-epoch TTT re-scores validation tokens the model has already trained on."
    VALID = [Valid(_LEGAL, name="epoch loop inside the chunk's train phase"),
             Valid(_PER_DOC, name="per-document LoRA reset per document"),
             Valid(_EPOCH_SELECTS_SHARD, name="the counter picks a different slice each pass, and is logged"),
             Valid(_TRAIN_LOOP_PERIODIC_EVAL, name="training loop with a periodic eval reusing the batch names"),
             Valid(_ENV_EPOCHS, name="epoch loop whose count is 1 by default: one pass")]
    INVALID = [Invalid(_MULTIPASS, expected_line=4, expected_severity="error", name="epoch loop around scoring"),
               Invalid(_LOGGED_EPOCHS, expected_line=4, expected_severity="error",
                       name="epoch loop whose counter is only printed"),
               Invalid(_TRAIN_LOOP_TRAINS_ON_EVAL, expected_line=5, expected_severity="error",
                       name="near-miss: on scoring steps the training step reads the scored window"),
               Invalid(_ENV_EPOCHS, expected_line=6, expected_severity="error",
                       log_hints=LogHints(hyperparameters={"ttt_epochs": "3"}),
                       name="near-miss: the same loop, the logs show TTT_EPOCHS=3")]

    def finish(self) -> None:
        facts = self.facts
        adapt_lines = {site.backward.node for site in facts.causality.sites if not site.fresh_tensors}
        for func in facts.graph.functions:
            events = facts.events(func)
            for loop in func.loops:
                if not isinstance(loop, (ast.For, ast.AsyncFor)):
                    continue
                inside = [e for e in events if _within(facts, e.anchor, loop)]
                scores = [e for e in inside if e.kind == "accum" and not e.count_only and facts.taint.resolve(e.labels)]
                updates = [e for e in inside if e.kind == "backward" and e.node in adapt_lines
                           and facts.taint.resolve(e.labels)]
                if not scores or not updates or not self._is_epoch_loop(func, loop) or self._runs_once(loop):
                    continue
                severity, guards = self.gated_severity(loop)
                source = facts.evidence_of_labels(facts.taint.resolve(scores[0].labels))
                evidence = [source, (loop.lineno, "epoch loop: the same validation tokens every iteration"),
                            (scores[0].line, "validation score accumulated inside it"),
                            (updates[0].line, "training on validation data inside it")]
                self.report(loop, f"Epoch loop at line {loop.lineno} scores and trains on the same validation "
                            "tokens every epoch; later epochs score tokens already trained on.",
                            severity=severity, evidence=[e for e in evidence if e and e[0]] + guards)

    def _runs_once(self, loop: ast.For) -> bool:
        """`for e in range(EPOCHS)` whose count is 1 by default, or as logged: one pass scores each token once."""
        it = loop.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and len(it.args) == 1):
            return False
        count = FlagEvaluator(self.facts.flag_defs, self.log_hints.flag_value).value(it.args[0])
        return isinstance(count, int) and not isinstance(count, bool) and count <= 1

    def _is_epoch_loop(self, func, loop: ast.For) -> bool:
        """A counted loop whose counter does not pick the validation data read in its body."""
        if self.facts.taint.resolve(self.facts.taint.labels(loop.iter, func)):
            return False  # iterates over chunks, documents or windows of the data
        counters = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        body = [n for stmt in loop.body for n in self.facts.graph.subtree(stmt)]
        for _ in range(2):  # names computed from the counter
            for node in body:
                if isinstance(node, ast.Assign) and _mentions(node.value, counters):
                    counters |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        for node in body:
            if isinstance(node, ast.Subscript) and _mentions(node.slice, counters) \
                    and self.facts.taint.resolve(self.facts.taint.labels(node.value, func)):
                return False
            if isinstance(node, ast.Call) and not _is_log_call(self.facts, node) \
                    and any(_mentions(a, counters) for a in node.args) \
                    and any(self.facts.taint.resolve(self.facts.taint.labels(a, func)) for a in node.args):
                return False
            if isinstance(node, (ast.For, ast.comprehension)) and node is not loop and _mentions(node.iter, counters):
                return False
        return True


def _is_log_call(facts, call: ast.Call) -> bool:
    """A statement-level call formatting its arguments into a message (`print(f"epoch {e}: {loss}")`): it reports
    the counter, it does not pick which tokens are read."""
    return isinstance(facts.graph.parents.get(call), ast.Expr) and any(
        isinstance(a, ast.JoinedStr) or (isinstance(a, ast.Call) and isinstance(a.func, ast.Name)
                                         and a.func.id == FSTRING_CALL) for a in call.args)


def _mentions(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _within(facts, node: ast.AST, ancestor: ast.AST) -> bool:
    parents = facts.graph.parents
    while node is not None:
        if node is ancestor:
            return True
        node = parents.get(node)
    return False

"""TTT-MULTIPASS-SCORE: an epoch loop that repeats score-then-train passes over the same validation tokens."""

from __future__ import annotations

import ast

from rules.analysis.causality import backward_operand
from rules.analysis.flag_values import FlagEvaluator
from rules.analysis.graph import inside, mentions
from rules.analysis.taint import EMPTY, def_key
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


# An adaptation loop over every validation token for several epochs that only sums its own training loss for a
# log line, then one sliding evaluation: a pre-eval fine-tune (TTT-PREEVAL-VAL's shape), not a multi-pass score.
_ADAPT_THEN_EVAL = '''import torch
def adapt(model, opt, held, epochs):
    for epoch in range(epochs):
        running = 0.0
        for i in range(0, held.numel() - 1024, 1024):
            x, y = held[i:i + 1024], held[i + 1:i + 1025]
            loss = model(x, y)
            loss.backward()
            opt.step()
            running += loss.item()
        print(f"adapt epoch:{epoch} train_loss:{running}")
def sliding(model, held):
    total = 0.0
    with torch.no_grad():
        for i in range(0, held.numel() - 1024, 512):
            total += model(held[i:i + 1024], held[i + 1:i + 1025]).item()
    return total
model = torch.nn.Linear(4, 4)
held = torch.load("fineweb_val_000000.bin")
adapt(model, torch.optim.SGD(model.parameters(), lr=0.01), held, 3)
print(f"final val_loss:{sliding(model, held)}")
'''
# The same with the training loss detached into the total before its backward.
_ADAPT_DETACHED_THEN_EVAL = _ADAPT_THEN_EVAL.replace(
    "            loss.backward()\n            opt.step()\n            running += loss.item()\n",
    "            running += loss.detach()\n            loss.backward()\n            opt.step()\n")

# A training loop over a token stream whose file is chosen by a switch (the validation file only when it is on),
# with a periodic validation diagnostic and a micro-step loop summing its training loss: every step trains on
# the stream's next batch, so no step repeats the tokens of an earlier one.
_STREAM_HEAD = '''import os
import torch
class Stream:
    def __init__(self, pattern):
        self.tokens = torch.load(pattern)
        self.pos = 0
    def take(self, n):
        piece = self.tokens[self.pos:self.pos + n + 1]
        self.pos += n
        return piece[:-1], piece[1:]
def diagnostic(model, held):
    total = 0.0
    with torch.no_grad():
        for i in range(0, held.numel() - 1024, 1024):
            total += model(held[i:i + 1024], held[i + 1:i + 1025]).item()
    return total
def main():
    on_held = bool(int(os.environ.get("FIT_HELD", "0")))
    held = torch.load("fineweb_val_000000.bin")
    stream = Stream("fineweb_val_000000.bin" if on_held else "fineweb_train_000000.bin")
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
'''
_STREAM_TRAINING = _STREAM_HEAD + '''    for step in range(100):
        if step % 25 == 0:
            print(f"step:{step} val_loss:{diagnostic(model, held)}")
        seen = torch.zeros(())
        for micro in range(4):
            x, y = stream.take(1024)
            loss = model(x, y)
            seen += loss.detach()
            loss.backward()
        opt.step()
        print(f"step:{step} train_loss:{seen.item()}")
main()
'''

# Near-miss: a stream rebuilt at the top of each epoch reads the same validation tokens every epoch.
_STREAM_PER_EPOCH = _STREAM_HEAD + '''    for epoch in range(3):
        stream = Stream("fineweb_val_000000.bin")
        seen = 0.0
        for micro in range(8):
            x, y = stream.take(1024)
            with torch.no_grad():
                seen += model(x, y).item()
            model(x, y).backward()
            opt.step()
    print(f"final val_loss:{seen}")
main()
'''

# Near-miss: one no-grad score per epoch, kept, and the second epoch's returned.
_SECOND_EPOCH_RETURNED = '''import torch
def ttt(model, opt, held):
    per_epoch = []
    for epoch in range(2):
        total = 0.0
        for i in range(0, held.numel() - 1024, 1024):
            x, y = held[i:i + 1024], held[i + 1:i + 1025]
            with torch.no_grad():
                total += model(x, y).item()
            out = model(x, y)
            out.backward()
            opt.step()
        per_epoch.append(total)
    return per_epoch[1]
print(ttt(torch.nn.Linear(4, 4), None, torch.load("fineweb_val_000000.bin")))
'''

# Near-miss: the total sums a no-grad loss taken before the update (the trained loss reuses its name) and the
# last epoch's total is printed as the final metric.
_NO_GRAD_TOTAL_PRINTED = '''import torch
def ttt(model, opt, held, epochs):
    for epoch in range(epochs):
        running = 0.0
        for i in range(0, held.numel() - 1024, 1024):
            x, y = held[i:i + 1024], held[i + 1:i + 1025]
            with torch.no_grad():
                loss = model(x, y)
            running += loss.item()
            loss = model(x, y)
            loss.backward()
            opt.step()
    print(f"final val_loss:{running}")
ttt(torch.nn.Linear(4, 4), None, torch.load("fineweb_val_000000.bin"), 3)
'''

# Near-miss: the trained loss itself, detached into the total, and the last epoch's total printed once at the end.
_DETACHED_TOTAL_PRINTED = _NO_GRAD_TOTAL_PRINTED.replace(
    "            with torch.no_grad():\n                loss = model(x, y)\n            running += loss.item()\n"
    "            loss = model(x, y)\n", "            loss = model(x, y)\n            running += loss.detach()\n")

# Near-miss: the epoch loop in the caller, the score-then-train chunk loop in a helper, the loss through a lambda.
_EPOCHS_IN_CALLER = '''import torch
def one_pass(opt, tokens, loss_of):
    total = 0.0
    for i in range(0, tokens.numel() - 1024, 1024):
        x, y = tokens[i:i + 1024], tokens[i + 1:i + 1025]
        with torch.no_grad():
            total += loss_of(x, y).item()
        loss_of(x, y).backward()
        opt.step()
    return total
def main():
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    held = torch.load("fineweb_val_000000.bin")
    loss_of = lambda a, b: model(a, b).mean()
    for epoch in range(3):
        score = one_pass(opt, held, loss_of)
    print(f"final val_loss:{score}")
main()
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
             Valid(_ENV_EPOCHS, name="epoch loop whose count is 1 by default: one pass"),
             Valid(_ADAPT_THEN_EVAL, name="epochs summing only their training loss, then one evaluation"),
             Valid(_ADAPT_DETACHED_THEN_EVAL, name="the training loss detached into a logged total before backward"),
             Valid(_STREAM_TRAINING, name="training steps over a stream with a periodic validation diagnostic")]
    INVALID = [Invalid(_MULTIPASS, expected_line=4, expected_severity="error", name="epoch loop around scoring"),
               Invalid(_LOGGED_EPOCHS, expected_line=4, expected_severity="error",
                       name="epoch loop whose counter is only printed"),
               Invalid(_TRAIN_LOOP_TRAINS_ON_EVAL, expected_line=5, expected_severity="error",
                       name="near-miss: on scoring steps the training step reads the scored window"),
               Invalid(_ENV_EPOCHS, expected_line=6, expected_severity="error",
                       log_hints=LogHints(hyperparameters={"ttt_epochs": "3"}),
                       name="near-miss: the same loop, the logs show TTT_EPOCHS=3"),
               Invalid(_STREAM_PER_EPOCH, expected_line=23, expected_severity="error",
                       name="near-miss: the stream is rebuilt every epoch"),
               Invalid(_SECOND_EPOCH_RETURNED, expected_line=4, expected_severity="error",
                       name="near-miss: per-epoch no-grad scores, the second returned"),
               Invalid(_NO_GRAD_TOTAL_PRINTED, expected_line=3, expected_severity="error",
                       name="near-miss: a no-grad total before the update, the last epoch printed"),
               Invalid(_DETACHED_TOTAL_PRINTED, expected_line=3, expected_severity="error",
                       name="near-miss: the trained loss detached into a total printed after the epochs"),
               Invalid(_EPOCHS_IN_CALLER, expected_line=16, expected_severity="error",
                       name="near-miss: epochs in the caller, chunks in a helper, loss through a lambda")]

    def finish(self) -> None:
        facts = self.facts
        adapt_lines = {site.backward.node for site in facts.causality.sites if not site.fresh_tensors}
        for func in facts.graph.functions:
            events = facts.events(func)
            for loop in func.loops:
                if not isinstance(loop, (ast.For, ast.AsyncFor)):
                    continue
                within = [e for e in events if inside(e.anchor, loop, facts.graph.parents)]
                scores = [e for e in within if e.kind == "accum" and not e.count_only and facts.taint.resolve(e.labels)
                          and facts.causality.is_score(e)]
                updates = [e for e in within if e.kind == "backward" and e.node in adapt_lines
                           and facts.taint.resolve(e.labels)]
                if not scores or not updates or not self._is_epoch_loop(func, loop) or self._runs_once(loop) \
                        or self._streams_new_tokens(func, loop, updates):
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
                if isinstance(node, ast.Assign) and mentions(node.value, counters):
                    counters |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        for node in body:
            if isinstance(node, ast.Subscript) and mentions(node.slice, counters) \
                    and self.facts.taint.resolve(self.facts.taint.labels(node.value, func)):
                return False
            if isinstance(node, ast.Call) and not _is_log_call(self.facts, node) \
                    and any(mentions(a, counters) for a in node.args) \
                    and any(self.facts.taint.resolve(self.facts.taint.labels(a, func)) for a in node.args):
                return False
            if isinstance(node, (ast.For, ast.comprehension)) and node is not loop and mentions(node.iter, counters):
                return False
        return True

    def _streams_new_tokens(self, func, loop: ast.For, updates) -> bool:
        """True when all validation data the loop trains on is taken, inside it, from a stream built before it
        (`stream.take(n)` on an object whose method advances its own state, `next(it)`): every iteration trains on
        new tokens. Validation data defined before the loop (a tensor an inner loop slices) or a stream rebuilt
        inside it is the same data every iteration."""
        facts, reads, env = self.facts, self.facts.causality.reaching(func), self.facts.taint.env.get(func, {})
        roots = []
        for update in updates:
            if update.chain:  # trained in a helper: what this loop passes to it
                call = update.anchor
                roots += [a for a in [*call.args, *(k.value for k in call.keywords)]
                          if facts.taint.resolve(facts.taint.labels(a, func))]
            else:
                roots.append(backward_operand(update.node))
        streams, seen = [], set()

        def fresh(expr, depth: int) -> bool:  # False: validation data here is the same every iteration
            if expr is None or isinstance(expr, ast.Lambda):
                return True
            if isinstance(expr, ast.Call) and self._stream_read(func, loop, expr, reads):
                streams.append(expr)
                return True
            if not isinstance(expr, ast.Name):
                return all(fresh(child, depth) for child in ast.iter_child_nodes(expr))
            defs = reads.get(expr)
            if not defs:  # a global or closure value: the same object every iteration
                return not facts.taint.resolve(facts.taint.labels(expr, func))
            for definition in defs - seen:
                seen.add(definition)
                if not facts.taint.resolve(env.get(def_key(definition), EMPTY)):
                    continue
                stmt = _binding(facts, definition)
                if stmt is None or isinstance(stmt, ast.AugAssign) or not inside(stmt, loop, facts.graph.parents) \
                        or depth >= 6 or not fresh(_bound(stmt), depth + 1):
                    return False
            return True

        return all(fresh(root, 0) for root in roots) and bool(streams)

    def _stream_read(self, func, loop: ast.For, call: ast.Call, reads) -> bool:
        """`stream.take(n)` / `next(it)` on an object defined only before LOOP, whose method changes its state."""
        if isinstance(call.func, ast.Name) and call.func.id == "next" and len(call.args) == 1:
            receiver = call.args[0]
        elif isinstance(call.func, ast.Attribute):
            receiver = call.func.value
            target = self.facts.graph.resolved.get(call)
            if target is None or not _advances(self.facts, target[0], 0):
                return False
        else:
            return False
        bindings = [_binding(self.facts, d) for d in reads.get(receiver, ())]  # None: a parameter
        parents = self.facts.graph.parents
        return bool(bindings) and not any(b is not None and inside(b, loop, parents) for b in bindings)


def _is_log_call(facts, call: ast.Call) -> bool:
    """A statement-level call formatting its arguments into a message (`print(f"epoch {e}: {loss}")`): it reports
    the counter, it does not pick which tokens are read."""
    return isinstance(facts.graph.parents.get(call), ast.Expr) and any(
        isinstance(a, ast.JoinedStr) or (isinstance(a, ast.Call) and isinstance(a.func, ast.Name)
                                         and a.func.id == FSTRING_CALL) for a in call.args)




def _advances(facts, method, depth: int) -> bool:
    """A method that assigns to its own object's attributes (`self.pos += n`), or calls one on itself or on an
    object it holds (`self.stream.take(n)`) that does."""
    if not method.is_method or depth > 3:
        return False
    me = method.params[0]

    def on_self(node) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id == me

    for node in method.nodes:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(isinstance(t, ast.Attribute) and on_self(t) for t in targets):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and on_self(node.func.value):
            target = facts.graph.resolved.get(node)
            if target is not None and target[0] is not method and _advances(facts, target[0], depth + 1):
                return True
    return False


def _binding(facts, definition: ast.AST) -> ast.AST | None:
    """The statement (or loop, comprehension, with-item) that binds a Store name; None for a parameter."""
    node = facts.graph.parents.get(definition)
    while isinstance(node, (ast.Tuple, ast.List, ast.Starred)):
        node = facts.graph.parents.get(node)
    return node if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor,
                                     ast.comprehension, ast.withitem, ast.NamedExpr)) else None


def _bound(stmt: ast.AST) -> ast.AST | None:
    """What a binding statement reads to bind its names."""
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.comprehension)):
        return stmt.iter
    if isinstance(stmt, ast.withitem):
        return stmt.context_expr
    return getattr(stmt, "value", None)

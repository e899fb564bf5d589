"""TTT-PREEVAL-VAL: gradient updates on validation tokens before those tokens are scored."""

from __future__ import annotations

import ast
import re

from rules.analysis.evidence import describe_path
from rules.analysis.passes import print_pattern
from rules.base import Invalid, LogHints, Rule, Valid

_PREQUANT = '''import torch
def load_validation_tokens(pattern, n):
    return torch.load(pattern)[:n]
def adapt(model, tokens, epochs):
    opt = torch.optim.AdamW(model.parameters())
    for _ in range(epochs):
        for i in range(0, tokens.numel() - 1024, 1024):
            chunk = tokens[i:i + 1025]
            loss = model(chunk[:-1], chunk[1:])
            loss.backward()
            opt.step()
def evaluate(model, tokens):
    total = 0.0
    for i in range(0, tokens.numel() - 1024, 1024):
        with torch.no_grad():
            total += model(tokens[i:i + 1024], tokens[i + 1:i + 1025]).item()
    return total
def main():
    val_tokens = load_validation_tokens("data/fineweb_val_*.bin", 10**6)
    model = torch.nn.Linear(4, 4)
    adapt(model, val_tokens, 3)
    torch.save(model.state_dict(), "final_model.pt")
    print(evaluate(model, val_tokens))
main()
'''

# The same adaptation defined but never run: main() is renamed and nothing calls it.
_NEVER_CALLED = _PREQUANT.replace("def main():", "def main_with_ttt():").replace(
    "\nmain()\n", "\nif __name__ == '__main__':\n    print('evaluation only')\n")

# The score is printed before the adaptation runs, and the logs show that printed line as the claimed one.
_CLAIMED_BEFORE = _PREQUANT.replace("    adapt(model, val_tokens, 3)\n",
                                    "    print(f'final_plain_eval val_nll:{evaluate(model, val_tokens):.6f}')\n"
                                    "    adapt(model, val_tokens, 3)\n")

_SCORE_FIRST = '''import torch
def eval_ttt(model, val_tokens, chunk, epochs):
    opt = torch.optim.SGD(model.parameters(), lr=0.002)
    loss_sum = 0.0
    num_chunks = val_tokens.numel() // chunk
    for ci in range(num_chunks):
        piece = val_tokens[ci * chunk:(ci + 1) * chunk + 1]
        with torch.no_grad():
            loss_sum += model(piece[:-1], piece[1:]).sum().item()
        if ci < num_chunks - 1:
            for _ in range(epochs):
                loss = model(piece[:-1], piece[1:]).mean()
                loss.backward()
                opt.step()
    return loss_sum
val_tokens = torch.load("fineweb_val_000000.bin")
print(eval_ttt(torch.nn.Linear(4, 4), val_tokens, 32768, 3))
'''

_GRAD_ON_SCORE = '''import torch
def phased_ttt(model, opt, docs):
    nll_total = torch.zeros(())
    for doc in docs:
        per_tok = model(doc[:-1], doc[1:])
        with torch.no_grad():
            nll_total += per_tok.detach().sum()
        per_tok.mean().backward()
        opt.step()
    return nll_total
val_tokens = torch.load("fineweb_val_000000.bin")
docs = val_tokens.split(1024)
print(phased_ttt(torch.nn.Linear(4, 4), torch.optim.SGD([], lr=0.1), docs))
'''

_TRAIN_DATA_TTT = '''import torch
def adapt(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(0, len(tokens) - 1, 512):
        model(tokens[i:i + 512], tokens[i + 1:i + 513]).backward()
        opt.step()
train_tail = torch.load("fineweb_train_000079.bin")[-65536:]
model = torch.nn.Linear(4, 4)
adapt(model, train_tail)
val_tokens = torch.load("fineweb_val_000000.bin")
total = 0.0
for i in range(0, len(val_tokens) - 1, 512):
    total += model(val_tokens[i:i + 512], val_tokens[i + 1:i + 513]).item()
print(total)
'''

_INLINE_MAIN = '''import os, torch
class Hyperparameters:
    val_files = os.path.join("data", "fineweb_val_*.bin")
    prequant_ttt = bool(int(os.environ.get("PREQUANT_TTT", "1")))
args = Hyperparameters()
def main():
    tokens = torch.load(args.val_files)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters())
    if args.prequant_ttt:
        for epoch in range(10):
            loss = model(tokens[:-1], tokens[1:])
            loss.backward()
            opt.step()
    score = 0.0
    for i in range(0, tokens.numel(), 1024):
        score += model(tokens[i:i + 1024], tokens[i + 1:i + 1025]).item()
    print(score)
main()
'''

_TRAIN_IN_EVAL = '''import torch
def eval_val_sgd_ttt(model, val_tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_sum = 0.0
    for i in range(0, val_tokens.numel() - 1024, 1024):
        x, y = val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]
        model(x, y).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(x, y).item()
    return loss_sum
print(eval_val_sgd_ttt(torch.nn.Linear(4, 4), torch.load("fineweb_val_000000.bin")))
'''

_SHARED_LOADER = '''import glob
import numpy as np
import torch
def shard_paths(pattern):
    return sorted(glob.glob(pattern))
def read_shard(path):
    return np.fromfile(path, dtype="<u2")
def load_tokens(pattern):
    return np.concatenate([read_shard(p) for p in shard_paths(pattern)])
class TokenStream:
    def __init__(self, pattern):
        self.paths = shard_paths(pattern)
        self.tokens = read_shard(self.paths[0])
        self.pos = 0
    def take(self, n):
        chunk = self.tokens[self.pos:self.pos + n + 1]
        self.pos += n
        return torch.from_numpy(chunk)
class Totals:
    def __init__(self):
        self.loss_sum = 0.0
        self.tokens = 0
def evaluate(model, tokens, totals):
    with torch.no_grad():
        for i in range(0, len(tokens) - 1024, 1024):
            y = tokens[i + 1:i + 1025]
            totals.loss_sum += model(tokens[i:i + 1024], y).item()
            totals.tokens += y.numel()
def train(model, opt, stream, steps):
    for _ in range(steps):
        chunk = stream.take(1024)
        model(chunk[:-1], chunk[1:]).backward()
        opt.step()
def main():
    val_tokens = torch.from_numpy(load_tokens("data/fineweb_val_*.bin"))
    model = torch.nn.Linear(4, 4)
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), TokenStream("data/fineweb_train_*.bin"), 100)
    totals = Totals()
    evaluate(model, val_tokens, totals)
    print(totals.loss_sum / totals.tokens)
main()
'''

_SHARED_LOADER_VAL_STREAM = _SHARED_LOADER.replace('TokenStream("data/fineweb_train_*.bin")',
                                                   'TokenStream("data/fineweb_val_*.bin")')

# A script class keeps validation statistics in a field that shares its name with a module (`self.glob`): reading
# `glob.glob(...)` is the module's function, not that field, so the training stream stays training data.
_FIELD_NAMED_LIKE_A_MODULE = _SHARED_LOADER.replace("def main():\n", '''class ContextCounts:
    def __init__(self):
        self.glob = np.bincount(load_tokens("data/fineweb_val_*.bin"), minlength=1024)
def main():
''').replace("    model = torch.nn.Linear(4, 4)\n", "    prior = ContextCounts()\n    model = torch.nn.Linear(4, 4)\n", 1)
_FIELD_NAMED_LIKE_A_MODULE_VAL = _FIELD_NAMED_LIKE_A_MODULE.replace('TokenStream("data/fineweb_train_*.bin")',
                                                                    'TokenStream("data/fineweb_val_*.bin")')

# The training stream's pattern is picked by a flag; the validation arm runs only with the flag on.
_SWITCHED_STREAM = '''import os
import torch
def load(pattern):
    return torch.load(pattern)
def main():
    val_tokens = load("data/fineweb_val_*.bin")
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pattern = "data/fineweb_val_*.bin" if bool(int(os.environ.get("TRAIN_ON_VAL", "{default}"))) else "data/fineweb_train_*.bin"
    stream = load(pattern)
    for i in range(0, 4096, 1024):
        model(stream[i:i + 1024], stream[i + 1:i + 1025]).backward()
        opt.step()
    total = 0.0
    with torch.no_grad():
        for i in range(0, 4096, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    print(total)
main()
'''

# One config dict holds the training and the validation paths; the model and the loader read it by key.
_CONFIG_DICT = '''import torch
conf = {"train_files": "data/fineweb_train_*.bin", "val_files": "data/fineweb_val_*.bin", "dim": 4}
class Net(torch.nn.Module):
    def __init__(self, conf):
        super().__init__()
        self.proj = build_layer(conf)
def build_layer(conf):
    return torch.nn.Linear(conf["dim"], conf.get("dim", 4))
def make_stream(conf):
    return torch.load(conf["{split}"])
def main():
    model = Net(conf)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stream = make_stream(conf)
    for i in range(0, 4096, 1024):
        model(stream[i:i + 1024], stream[i + 1:i + 1025]).backward()
        opt.step()
    val_tokens = torch.load(conf["val_files"])
    total = 0.0
    with torch.no_grad():
        for i in range(0, 4096, 1024):
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    print(total)
main()
'''

_EXAMPLE_LOOP = '''import torch
def eval_val_ttt(model, val_tokens, chunk_tokens, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_sum, token_count = 0.0, 0
    num_chunks = (val_tokens.numel() - 1) // chunk_tokens
    for ci in range(num_chunks):
        chunk = val_tokens[ci * chunk_tokens:(ci + 1) * chunk_tokens + 1]
        with torch.no_grad():
            loss_sum += model(chunk[:-1], chunk[1:]).item() * chunk_tokens
            token_count += chunk_tokens
        if ci == num_chunks - 1:
            break
        loss = model(chunk[:-1], chunk[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss_sum / token_count
def main():
    val_tokens = torch.load("data/fineweb_val_000000.bin")
    print(eval_val_ttt(torch.nn.Linear(4, 4), val_tokens, 32768, 0.002))
main()
'''

_ORDER_SWITCH = '''import torch
def train_chunk(model, opt, piece):
    model(piece[:-1], piece[1:]).backward()
    opt.step()
def ttt_eval(model, opt, val_tokens, chunk, order="score_first"):
    total = 0.0
    n = val_tokens.numel() // chunk
    for c in range(n):
        piece = val_tokens[c * chunk:(c + 1) * chunk + 1]
        if order == "train_first" and c < n - 1:
            train_chunk(model, opt, piece)
        with torch.no_grad():
            total += model(piece[:-1], piece[1:]).item()
        if order == "score_first" and c < n - 1:
            train_chunk(model, opt, piece)
    return total
model = torch.nn.Linear(4, 4)
print(ttt_eval(model, torch.optim.SGD(model.parameters(), lr=0.01), torch.load("fineweb_val_000000.bin"), 4096))
'''
_ORDER_SWITCH_USED = _ORDER_SWITCH.replace("4096))", '4096, order="train_first"))')
_ORDER_REBOUND = _ORDER_SWITCH.replace('order="score_first"', 'order=None').replace(
    "    total = 0.0\n", '    total = 0.0\n    if order is None:\n        order = "train_first"\n')

_FLAG_OFF = _INLINE_MAIN.replace('"PREQUANT_TTT", "1"', '"PREQUANT_TTT", "0"')
# The same guard read through getattr with a constant name: it reads the same setting as `args.prequant_ttt`.
_FLAG_OFF_GETATTR = _FLAG_OFF.replace("if args.prequant_ttt:", 'if getattr(args, "prequant_ttt", False):')


# Two definitions of the same names: a warm-up on a training shard, then the scoring windows. Which one reaches the
# warm-up's backward decides (flow-sensitive taint), not that the names are shared.
_WARMUP = '''import torch
def main():
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    held = torch.load("fineweb_val_000000.bin")
    shard = torch.load("fineweb_train_000001.bin")
    x, y = {WARM}[:1024], {WARM}[1:1025]
    for _ in range(3):
        model(x, y).backward()
        opt.step()
    total = 0.0
    for i in range(0, held.numel() - 1024, 1024):
        x, y = held[i:i + 1024], held[i + 1:i + 1025]
        with torch.no_grad():
            total += model(x, y).item()
    print(f"final val_bpb:{total}")
main()
'''
_WARMUP_ON_TRAIN = _WARMUP.replace("{WARM}", "shard")
_WARMUP_ON_VAL = _WARMUP.replace("{WARM}", "held")


class PreEvalValTTT(Rule):
    """Flags gradient updates (backward + optimizer step or parameter mutation) on a loss computed from validation
    tokens when, on some call path, no loop scores those tokens first: the "pre-quant TTT" fine-tune on val_tokens
    before serialize/quantize, train-then-score chunk loops, and inline adaptation in main().

    Why: #1017 C3 (score before update). The README FAQ allows test-time training only on validation tokens already
    evaluated; 0hq on #402, valerio-oai's bulk closures on #677 and cocohearts on #1972 ruled pre-quant TTT illegal.
    Baking the adapted weights into the artifact does not make it legal.

    Instead: score each chunk first (accumulate its loss), then train on that chunk only, never on a chunk that has
    not been scored yet (the merged #549 / #1413 shape); or adapt on training data.
    """

    ID = "TTT-PREEVAL-VAL"
    CODE = "PG201"
    MESSAGE = "Validation tokens are trained on before they are scored (score-after-adapt, #1017 C3)."
    VALID = [
        Valid(_SCORE_FIRST, name="score-first chunk loop, epochs on the scored chunk, last chunk not trained"),
        Valid(_GRAD_ON_SCORE, name="scored forward with grad on, same loss reused for training after scoring"),
        Valid(_TRAIN_DATA_TTT, name="TTT on training data"),
        Valid(_SHARED_LOADER, name="train stream and val tokens read through the same shard helpers"),
        Valid(_FIELD_NAMED_LIKE_A_MODULE, name="a field named like the glob module holds validation counts"),
        Valid(_CONFIG_DICT.replace("{split}", "train_files"),
              name="one config dict holds both paths; model and training stream read other keys of it"),
        Valid(_EXAMPLE_LOOP, name="score-first loop with tuple-initialised totals, last chunk not trained"),
        Valid(_ORDER_SWITCH, name="train-first branch behind a parameter the caller leaves at score_first"),
        Valid(_WARMUP_ON_TRAIN, name="warm-up on a training shard; the same names later hold the scored windows"),
    ]
    INVALID = [
        Invalid(_PREQUANT, expected_line=10, expected_severity="error", name="pre-quant TTT helper"),
        Invalid(_CLAIMED_BEFORE, expected_line=10, expected_severity="warning",
                name="near-miss: the claimed score is the one printed before the adaptation runs",
                log_hints=LogHints(claimed=("final_plain_eval val_nll:2.345678",))),
        Invalid(_CLAIMED_BEFORE, expected_line=10, expected_severity="error",
                name="the same script, the claim being the adapted model's later score",
                log_hints=LogHints(claimed=("2.123456",))),
        Invalid(_NEVER_CALLED, expected_line=10, expected_severity="warning",
                name="near-miss: the same adaptation in a function nothing calls, passes or names: it does not run"),
        Invalid(_WARMUP_ON_VAL, expected_line=9, expected_severity="error",
                name="near-miss: the warm-up's names hold validation windows before it runs"),
        Invalid(_INLINE_MAIN, expected_line=13, expected_severity="error", name="inline in main, flag on"),
        Invalid(_FLAG_OFF, expected_line=13, expected_severity="warning", name="inline in main, flag off"),
        Invalid(_FLAG_OFF_GETATTR, expected_line=13, expected_severity="warning",
                name="near-miss: the off flag read through getattr with a constant name"),
        Invalid(_FLAG_OFF_GETATTR, expected_line=13, expected_severity="error",
                name="the same getattr guard, the logs echoing the flag on",
                log_hints=LogHints(hyperparameters={"prequant_ttt": "True"})),
        Invalid(_TRAIN_IN_EVAL, expected_line=7, expected_severity="error", name="train then score in eval"),
        Invalid(_SHARED_LOADER_VAL_STREAM, expected_line=32, expected_severity="error",
                name="training stream built from the validation pattern"),
        Invalid(_SWITCHED_STREAM.replace("{default}", "1"), expected_line=12, expected_severity="error",
                name="the training stream's pattern picks the validation split behind a flag on by default"),
        Invalid(_SWITCHED_STREAM.replace("{default}", "0"), expected_line=12, expected_severity="warning",
                name="near-miss: the same switch off by default (reported as a warning)"),
        Invalid(_CONFIG_DICT.replace("{split}", "val_files"), expected_line=16, expected_severity="error",
                name="near-miss: the stream helper reads the validation key of the same config dict"),
        Invalid(_FIELD_NAMED_LIKE_A_MODULE_VAL, expected_line=32, expected_severity="error",
                name="near-miss: the same script with its training stream built from the validation pattern"),
        Invalid(_ORDER_SWITCH_USED, expected_line=3, expected_severity="error",
                name="caller selects the train-first branch"),
        Invalid(_ORDER_REBOUND, expected_line=3, expected_severity="error",
                name="default None rebound to train-first inside the function"),
    ]

    def finish(self) -> None:
        for site in self.facts.causality.sites:
            if site.throwaway or not site.pre_eval_paths:
                continue
            path = site.pre_eval_paths[0]
            severity = "error" if path.later_score else "warning"
            severity, guard_evidence = self.gated_severity(path.nodes, severity)
            evidence, later = describe_path(self.facts, site, path)
            where = f"`{site.home.qualname}`" if site.home.parent else "module level"
            message = f"{where} trains on validation data (line {site.backward.line}) before it is scored"
            message += f"; the same data is scored later at line {later}." if later else \
                "; no later scoring of it was found."
            outermost, anchor = path.frames[-1]
            if not self.facts.graph.referenced(outermost):  # the code is there, but nothing runs it
                severity = "warning"
                message += f" `{outermost.qualname}` is never called, passed or named elsewhere: it does not run."
            claimed_before = next((line for func, node in path.frames
                                   if (line := self._claim_printed_before(func, node)) is not None), None)
            if claimed_before is not None:
                severity = "warning"
                message += (f" The claimed score is printed at line {claimed_before}, before this adaptation runs: "
                            "the adapted model's score is not the one reported.")
                evidence.append((claimed_before, "prints the claimed score, before the adaptation"))
            self.report(site.backward.node, message, severity=severity, evidence=evidence + guard_evidence,
                        data={"function": site.home.qualname})

    def _claim_printed_before(self, func, anchor) -> int | None:
        """The line of the print in FUNC that writes the claimed score, when every such print comes before ANCHOR
        (the call that leads to the adaptation); None without claim evidence or when one comes after it."""
        claimed = self.log_hints.claimed
        if not claimed:
            return None
        lines = []
        for stmt in self.facts.graph.of_type(ast.Expr):
            pattern = print_pattern(stmt)
            if pattern is not None and any(re.search(pattern, line) for line in claimed):
                if not any(n is stmt for n in func.nodes) or stmt.lineno >= anchor.lineno:
                    return None
                lines.append(stmt.lineno)
        return max(lines) if lines else None

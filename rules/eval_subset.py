"""EVAL-SUBSET: validation data cut to a part of the split by a setting that is on."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import script_facts
from rules.analysis.graph import last_name
from rules.base import Invalid, LogHints, Rule, Valid

# Library calls that keep a part of a population, and where their size argument sits: (position, keyword).
_PART_CALLS = {"sample": (1, "k"), "choice": (1, "size"), "choices": (None, "k"), "islice": (1, None)}
_LENGTH_CALLS = {"len", "numel", "size"}  # a bound that scales the data's own length: a fraction, not a count

_FRACTION = (
    "import os, random\n"
    "class H:\n"
    "    doc_fraction = float(os.environ.get('DOC_FRACTION', {DEFAULT}))\n"
    "def pick(docs, h):\n"
    "    n = max(1, int(len(docs) * h.doc_fraction))\n"
    "    return random.Random(0).sample(docs, n)\n"
    "def main(h):\n"
    "    docs = load_documents('data/fineweb_val_000000.bin')\n"
    "    return score(pick(docs, h))\n"
)


class EvalSubset(Rule):
    """Flags validation data cut to a part (a prefix, every k-th item, a random sample) whose size comes from a
    setting that is on: its default, or the value the logs print.

    Why: README: validation always uses the full ``fineweb_val_*`` split; #1835 reported ``mix_bpb`` on its first
    3 M of 40.5 M tokens (README text); a run scored on a sampled 2 % of the documents measures a different
    quantity. What counts is what is cut (data read from a validation path) and by what (a setting), never the
    setting's name. A static match with only the code default is a warning (the scored-token count check,
    FULL-VAL-TOKEN-COUNT, carries the error); a setting the logs print at a subset value is an error.

    Instead: score every validation token (sliding window v2) and report that; debug knobs must default to off.
    """

    ID = "EVAL-SUBSET"
    CODE = "PG105"
    MESSAGE = "score computed on a part of the validation split (a subset setting is on)"
    VALID = [
        Valid(
            "import os\n"
            "limit = int(os.environ.get('VAL_TOKENS_LIMIT', 0))\n"
            "def load(tokens):\n"
            "    if limit > 0:\n"
            "        tokens = tokens[:limit]\n"
            "    return tokens\n"
            "val = load(read_shard('fineweb_val_000000.bin'))\n",
            name="debug limit off by default",
        ),
        Valid(
            "def load(tokens, seq_len):\n"
            "    usable = ((tokens.numel() - 1) // seq_len) * seq_len\n"
            "    return tokens[: usable + 1]\n"
            "val = load(read_shard('fineweb_val_000000.bin'), 2048)\n",
            name="truncation to whole sequences (the bound is the data's own length)",
        ),
        Valid(_FRACTION.replace("{DEFAULT}", "1.0"), name="a document fraction that defaults to the whole split"),
        Valid(
            "import os\n"
            "MAX_TOKENS = int(os.environ.get('MAX_TOKENS', 5000000))\n"
            "def main():\n"
            "    train = read_shard('data/fineweb_train_000000.bin')\n"
            "    return fit(train[:MAX_TOKENS])\n",
            name="near-miss: a token cap on training data",
        ),
        Valid(
            "import os\n"
            "SUBSET = int(os.environ.get('EVAL_SUBSET', 100000))\n"
            "def main(model):\n"
            "    layers = model.blocks[:SUBSET]\n"
            "    return score(read_shard('data/fineweb_val_000000.bin'), layers)\n",
            name="near-miss: a subset-named setting that cuts something other than validation data",
        ),
        Valid(
            "import os\n"
            "world = int(os.environ.get('WORLD_SIZE', '8'))\n"
            "rank = int(os.environ.get('RANK', '0'))\n"
            "def main():\n"
            "    held = read_shard('data/fineweb_val_000000.bin')\n"
            "    starts = list(range(0, len(held) - 64, 64))\n"
            "    return all_reduce(score(held, starts[rank::world]))\n",
            name="near-miss: every rank scores its k-th share of the windows (a partition, all-reduced)",
        ),
        Valid(
            "import os\n"
            "cap = os.environ.get('VAL_MAX_TOKENS', '4000000')\n"
            "def main():\n"
            "    held = read_shard('data/fineweb_val_000000.bin')\n"
            "    return score(held if cap == 'full' else held[:int(cap)])\n",
            name="a cap the logs print as `full`", log_hints=LogHints(hyperparameters={"val_max_tokens": "full"})),
        Valid(_FRACTION.replace("{DEFAULT}", "0.02"), name="a fraction set by the logs to the whole split",
              log_hints=LogHints(hyperparameters={"doc_fraction": "1.0"})),
    ]
    INVALID = [
        Invalid(
            "import os\n"
            "class H:\n"
            "    ppm_subset_tokens = int(os.environ.get('PPM_SUBSET_TOKENS', 5000000))\n"
            "def final(h, nll, total):\n"
            "    subset = min(h.ppm_subset_tokens, total)\n"
            "    return nll[:subset].mean()\n"
            "def main(h, model):\n"
            "    val = read_shard('data/fineweb_val_000000.bin')\n"
            "    return final(h, model.losses(val), len(val))\n",
            expected_line=6, expected_severity="warning",
            name="#1835: mix_bpb on the first 5 M tokens",
        ),
        Invalid(
            "import os\n"
            "N = int(os.getenv('EVAL_TOKENS_LIMIT', '1000000'))\n"
            "def score(nll):\n"
            "    return nll[:N].sum()\n"
            "score(per_token_loss(read_shard('data/fineweb_val_000000.bin')))\n",
            expected_line=4,
            name="module-level limit",
        ),
        Invalid(_FRACTION.replace("{DEFAULT}", "0.05"), expected_line=6, expected_severity="warning",
                name="a random sample of the documents by a fraction on by default"),
        Invalid(_FRACTION.replace("{DEFAULT}", "1.0"), expected_line=6, expected_severity="error",
                log_hints=LogHints(hyperparameters={"doc_fraction": "0.02"}),
                name="#1837 shape: the logs print the fraction at 2 % although it defaults to the whole split"),
        Invalid(
            "import os\n"
            "seq = int(os.environ.get('SEQ_LEN', '2048'))\n"
            "def main(model):\n"
            "    held = read_shard('data/fineweb_val_000000.bin')\n"
            "    warm = model(held[:seq + 1])\n"
            "    return score(model, held)\n",
            expected_line=5, expected_severity="warning", log_hints=LogHints(hyperparameters={"seq_len": "2048"}),
            name="near-miss: a prefix by a setting the logs print at its default stays a static warning"),
        Invalid(
            "import os\n"
            "stride = int(os.environ.get('EVAL_EVERY', '4'))\n"
            "def main():\n"
            "    held = read_shard('data/fineweb_val_000000.bin')\n"
            "    return score(held[::stride])\n",
            expected_line=5,
            name="renamed: every k-th window, under a neutral setting name",
        ),
        Invalid(
            "import os, itertools\n"
            "cap = int(os.environ.get('WINDOWS', '256'))\n"
            "def main():\n"
            "    held = read_shard('data/fineweb_val_000000.bin')\n"
            "    return score(list(itertools.islice(windows(held), cap)))\n",
            expected_line=5,
            name="reshaped: the first windows of a validation iterator through islice",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        knobs = facts.env_knobs  # attribute or name -> (ENV, default, line): every setting read from the env
        if not knobs:
            return
        for info in facts.graph.functions:
            flow = None
            for node in info.nodes:
                cut = _cut(node)
                if cut is None:
                    continue
                data, bound, how = cut
                flow = flow or facts.flow(info.node)
                names = sorted(knobs.keys() & flow.closure(bound))
                origin = self.facts.val_evidence(data, info) if names else None
                if origin is None:
                    continue
                name = names[0]
                env, default, line = knobs[name]
                logged = self.log_hints.flag_value(env) or self.log_hints.flag_value(name)
                value = default if logged is None else logged
                if not _a_size(value) or (_scales_length(bound, flow) and _at_least_one(value)):
                    continue  # off, or a fraction of the whole
                # The logs decide only where they show the setting moved from its default (to a subset); a logged
                # value equal to the default is the static case, a warning (a window's length, a warm-up's).
                moved = logged is not None and not _same_value(logged, default)
                severity, guards = self.gated_severity(node, "error" if moved else None)
                said = f"the logs print {name} = {logged}" if logged is not None else f"{env} defaults to {default}"
                self.report(node, severity=severity, evidence=[
                    origin, (line, said), (node.lineno, f"{how} `{ast.unparse(node)[:60]}`"), *guards])
                break  # one finding per function


def _cut(node: ast.AST) -> tuple[ast.AST, ast.AST, str] | None:
    """(the data, the size or step expression, how it is cut) when NODE keeps a part of a sequence."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        s = node.slice
        if s.step is not None:  # `x[rank::world]` with an offset is one part of a partition, not a subset
            return (node.value, s.step, "every k-th item kept by") if s.lower is None else None
        if s.upper is not None and s.lower is None:
            return node.value, s.upper, "a prefix kept by"
        return None
    if isinstance(node, ast.Call) and node.args:
        where = _PART_CALLS.get(last_name(node.func) or "")
        if where is None:
            return None
        position, keyword = where
        size = next((k.value for k in node.keywords if k.arg == keyword), None) if keyword else None
        if size is None and position is not None and len(node.args) > position:
            size = node.args[position]
        return (node.args[0], size, "a part kept by") if size is not None else None
    return None


def _scales_length(bound: ast.AST, flow) -> bool:
    """Whether the bound multiplies the data's own length (`int(len(docs) * fraction)`)."""
    def calls(expr: ast.AST) -> bool:
        return any(isinstance(n, ast.Call) and (last_name(n.func) or "") in _LENGTH_CALLS for n in ast.walk(expr))
    if calls(bound):
        return True
    return any(calls(value) for name in flow.closure(bound) for value in flow.defs.get(name, ()))


def _number(value: object) -> float | None:
    """VALUE (a default or a logged text, maybe quoted) as a number; None when it is none."""
    try:
        return float(str(value).strip().strip("'\""))
    except ValueError:
        return None


def _a_size(value: object) -> bool:
    """Whether VALUE can size a part: a positive number (`full`, `all`, `none`, 0 and off are the whole split)."""
    return (_number(value) or 0.0) > 0


def _same_value(logged: str, default: object) -> bool:
    a, b = _number(logged), _number(default)
    if a is None or b is None:
        return str(logged).strip().strip("'\"") == str(default).strip().strip("'\"")
    return a == b


def _at_least_one(value: object) -> bool:
    return (_number(value) or 0.0) >= 1.0

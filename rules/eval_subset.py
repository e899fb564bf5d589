"""EVAL-SUBSET: the reported score computed on a prefix of the validation tokens set by a knob that is on."""

from __future__ import annotations

import ast
import re

from rules.analysis.dataflow import is_falsy_default, script_facts
from rules.base import Invalid, Rule, Valid

_SUBSET_ENV = re.compile(r"SUBSET|LIMIT|MAX_TOKENS|MAX_EVAL|NUM_EVAL", re.IGNORECASE)


class EvalSubset(Rule):
    """Flags ``scores[:subset]`` where the size comes from an env knob (SUBSET, LIMIT...) with a non-zero default.

    Why: README: validation always uses the full ``fineweb_val_*`` split; #1835 reported ``mix_bpb`` on its first
    3 M of 40.5 M tokens (README text). A static match is a warning; the scored-token count check
    (FULL-VAL-TOKEN-COUNT) carries the error.

    Instead: score every validation token (sliding window v2) and report that; debug knobs must default to off.
    """

    ID = "EVAL-SUBSET"
    CODE = "PG105"
    MESSAGE = "score computed on a prefix of the validation tokens (subset knob on by default)"
    VALID = [
        Valid(
            "import os\n"
            "limit = int(os.environ.get('VAL_TOKENS_LIMIT', 0))\n"
            "def load(tokens):\n"
            "    if limit > 0:\n"
            "        tokens = tokens[:limit]\n"
            "    return tokens\n",
            name="debug limit off by default",
        ),
        Valid(
            "def load(tokens, seq_len):\n"
            "    usable = ((tokens.numel() - 1) // seq_len) * seq_len\n"
            "    return tokens[: usable + 1]\n",
            name="truncation to whole sequences",
        ),
    ]
    INVALID = [
        Invalid(
            "import os\n"
            "class H:\n"
            "    ppm_subset_tokens = int(os.environ.get('PPM_SUBSET_TOKENS', 5000000))\n"
            "def final(h, nll, total):\n"
            "    subset = min(h.ppm_subset_tokens, total)\n"
            "    return nll[:subset].mean()\n",
            expected_line=6,
            name="#1835: mix_bpb on the first 5 M tokens",
        ),
        Invalid(
            "import os\n"
            "N = int(os.getenv('EVAL_TOKENS_LIMIT', '1000000'))\n"
            "def score(nll):\n"
            "    return nll[:N].sum()\n",
            expected_line=4,
            name="module-level limit",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        knobs = {name: v for name, v in facts.env_knobs.items() if _SUBSET_ENV.search(v[0]) and not is_falsy_default(v[1])}
        if not knobs:
            return
        for info in facts.graph.functions:
            flow = None
            hits: list[tuple[ast.AST, str]] = []
            for node in info.nodes:
                if not (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)):
                    continue
                upper = node.slice.upper
                if upper is None or node.slice.lower is not None:
                    continue
                flow = flow or facts.flow(info.node)
                hit = knobs.keys() & flow.closure(upper)
                if hit:
                    hits.append((node, sorted(hit)[0]))
            if hits:  # one finding per function, every sliced array as evidence
                env, default, line = knobs[hits[0][1]]
                self.report(hits[0][0], evidence=[(line, f"{env} defaults to {default}"), *(
                    (n.lineno, f"slice `{ast.unparse(n)[:50]}` keeps only a prefix") for n, _ in hits)])

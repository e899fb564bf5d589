"""NGRAM-TARGET-IN-KEY: an n-gram cache that forms only the gold token's probability, keyed on the target."""

from __future__ import annotations

import ast

from rules.analysis.counts import row_sums, smoothing_normalised
from rules.analysis.dataflow import FunctionFlow, guarded_severity, last_name, script_facts
from rules.analysis.mixtures import target_free_experts
from rules.base import Invalid, Rule, Valid

# A dense count table with the token on its own axis (rows hashed from the context), read at the scored token.
_DENSE = (
    "import torch\n"
    "class Cache:\n"
    "    def update(self, prev, nxt):\n"
    "        rows = (prev * 36313) % self.R\n"
    "        ones = torch.ones(len(nxt))\n"
    "        self.counts.reshape(-1).index_add_(0, rows * self.V + nxt, ones)\n"
    "        self.totals.index_add_(0, rows, ones)\n"
    "    def nll(self, x, y):\n"
    "        ctx = (x * 36313) % self.R\n"
    "        c = self.counts[ctx, y]\n"
    "        totals = self.totals[ctx]\n"
    "        p = (c + 0.5) / ({den})\n"
    "        return -torch.log(p){extra}\n"
)


# Per-token experts scored at the gold token, mixed in log space; {third} is the third expert.
_EXPERTS = (
    "import math\n"
    "import torch\n"
    "def experts(logits, y, uni):\n"
    "    lp = torch.log_softmax(logits, dim=-1)\n"
    "    neural = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)\n"
    "    unigram = -uni.log()[y]\n"
    "    third = {third}\n"
    "    return torch.stack([neural, unigram, third], dim=-1)\n"
    "def score(logits, y, uni, log_w):\n"
    "    nll = experts(logits, y, uni)\n"
    "    return -torch.logsumexp(log_w - nll, dim=-1)\n"
)


class NgramTargetInKey(Rule):
    """Flags a count ratio ``table[hash(context, token)] / table[hash(context)]``: the gold-token-only n-gram.

    Why: valerio-oai closed PR #779 and PR #982 (2026-03-27, maintainer ruling) because hashed caches that look up
    the (context, target) count and divide by the context count give a probability for the realized token only;
    the implied distribution does not sum to 1 and the lookup key contains the token being scored (C2).

    Instead: mix over the whole vocabulary (a normalized tilt such as merged PR #1514: a hint from prefix-only
    tables, ``p(a)·exp(β·[a=h]) / Z``), and update the tables with a token only after it is scored.
    """

    ID = "NGRAM-TARGET-IN-KEY"
    CODE = "PG101"
    MESSAGE = (
        "n-gram cache probability = count(context, target) / count(context): only the gold token's probability is "
        "formed and the lookup key contains the scored token (unnormalized, ruled out on PR #779/#982)"
    )
    VALID = [
        Valid(
            "def bigram_hash(t, mod):\n"
            "    out = (36313 * t[..., 1:]) ^ (27191 * t[..., :-1])\n"
            "    return out % mod\n"
            "def forward(self, ids):\n"
            "    return self.embed(bigram_hash(ids, self.mod))\n",
            name="BigramHash embedding on (previous, current) input tokens",
        ),
        Valid(
            "def tilt(nll, p_model, hint, tgt, beta):\n"
            "    z = 1 + p_model[hint] * (math.exp(beta) - 1)\n"
            "    return nll + (math.log(z) - beta * (tgt == hint))\n",
            name="normalized closed-form token tilt",
        ),
        Valid(
            "def ngram_dist(ctx_hash, full_tables, ctx_tables, V, mask, prime):\n"
            "    cand = np.arange(V)\n"
            "    full_key = (ctx_hash[:, None] ^ (cand[None, :] * prime)) & mask\n"
            "    ctx_key = ctx_hash & mask\n"
            "    return full_tables[full_key] / ctx_tables[ctx_key][:, None]\n",
            name="count ratio over every candidate token of the vocabulary",
        ),
        Valid(
            _DENSE.format(den="totals + 0.5 * self.V", extra=""),
            name="dense per-context table over the vocabulary, its row totals incremented beside it (add-k over V)",
        ),
        Valid(
            _DENSE.format(den="totals + 0.5 * self.V", extra="").replace(
                "self.totals.index_add_(0, rows, ones)", "pass").replace(
                "totals = self.totals[ctx]", "totals = self.counts.sum(dim=1)[ctx]"),
            name="dense per-context table divided by its row sums computed from it",
        ),
        Valid(_EXPERTS.format(third="torch.full_like(neural, math.log(logits.size(-1)))"),
              name="a uniform expert (log V for every token) in a gold-token mixture is a distribution"),
        Valid(_EXPERTS.format(third="-lp.gather(-1, y.unsqueeze(-1)).squeeze(-1) * 0.5 + unigram * 0.5"),
              name="near-miss: a third expert built from the other two, each read at the scored token"),
        Valid(
            "def bpb(loss_sum, byte_count, token_count):\n"
            "    return (loss_sum / token_count) / math.log(2) * token_count / byte_count\n",
            name="aggregate bpb conversion",
        ),
    ]
    INVALID = [
        Invalid(
            "def score(ctx_hash, y, full_counts, ctx_counts, mask, prime, p_model, a):\n"
            "    ctx_key = ctx_hash & mask\n"
            "    full_key = (ctx_hash ^ (y * prime)) & mask\n"
            "    p_ng = np.minimum(full_counts[full_key], ctx_counts[ctx_key]) / np.maximum(ctx_counts[ctx_key], 1)\n"
            "    return -np.log((1 - a) * p_model + a * p_ng)\n",
            expected_line=4,
            name="PR #779 shape",
        ),
        Invalid(
            "class Cache:\n"
            "    def _hashes(self, toks, pos):\n"
            "        h = toks[pos - 1] * 36313\n"
            "        tgt = toks[pos]\n"
            "        return h & self.mask, (h ^ (tgt * 27191)) & self.mask\n"
            "    def score(self, toks, pos):\n"
            "        ctx_h, full_h = self._hashes(toks, pos)\n"
            "        c = self.ctx[ctx_h]\n"
            "        f = self.full[full_h]\n"
            "        return f / np.maximum(c, 1.0)\n",
            expected_line=10,
            name="keys computed in a helper (PR #870 shape)",
        ),
        Invalid(
            "def weights(counts, totals, prev, tgt, p_model):\n"
            "    p = counts[prev, tgt] / totals[prev]\n"
            "    return -torch.log(0.5 * p_model + 0.5 * p)\n",
            expected_line=2,
            name="bigram count table indexed by (previous, target)",
        ),
        Invalid(
            _DENSE.format(den="totals + 0.5", extra=""),
            expected_line=12,
            name="near-miss: dense table and row totals, but add-k smoothing with k (not k * V) below the ratio",
        ),
        Invalid(
            _DENSE.format(den="totals + 0.5 * self.V", extra="\n    def bump(self, rows, cols):\n"
                          "        self.counts.reshape(-1).index_add_(0, rows * self.V + cols, torch.ones(len(rows)))"),
            expected_line=12,
            name="near-miss: the count table is also incremented where its totals are not",
        ),
        Invalid(
            "class Cache:\n"
            "    def add(self, ctx, tok):\n"
            "        key = (ctx ^ (tok * 27191)) & self.mask\n"
            "        self.full[key] += 1\n"
            "        self.ctx[ctx & self.mask] += 1\n"
            "    def prob(self, ctx, tgt):\n"
            "        key = (ctx ^ (tgt * 27191)) & self.mask\n"
            "        return self.full[key] / max(self.ctx[ctx & self.mask], 1)\n",
            expected_line=8,
            name="near-miss: hashed (context, target) key: paired increments do not make it a distribution",
        ),
        Invalid(_EXPERTS.format(third="-(lp.exp() * lp).sum(-1)"), expected_line=7,
                name="an entropy 'expert': the same probability for every token, mixed with gold-token experts"),
        Invalid(_EXPERTS.format(third="h").replace("    third = h\n", "    p = lp.exp()\n    h = (p * -lp).sum(-1)\n"
                                                 "    third = h\n"), expected_line=8,
                name="evasion: the target-free expert computed in two steps under other names"),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        reported_keys: set[int] = set()  # one finding per offending key, at its first ratio
        candidate_scopes: dict[int, bool] = {}
        for node in ast.walk(self.context.tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                scope = facts.enclosing_function(node)
                if id(scope) not in candidate_scopes:
                    candidate_scopes[id(scope)] = _may_hash(scope) or _calls_hashing_helper(scope, facts)
                if not candidate_scopes[id(scope)]:
                    continue
                flow = facts.flow(scope)
                hit = self._gold_only_ratio(node, flow, facts)
                if hit and hit[0][0] not in reported_keys:
                    reported_keys.add(hit[0][0])
                    severity, guards = guarded_severity(self, node)
                    self.report(node, severity=severity, evidence=[*hit, *guards])
        for info in facts.graph.functions:
            for stack, expert, defined in target_free_experts(facts, info.node):
                severity, guards = guarded_severity(self, stack)
                self.report(defined, (
                    f"the mixture stacked at line {stack.lineno} has an expert, `{ast.unparse(expert)[:40]}`, that "
                    "does not read the scored token: it gives every token the same probability, so the mixture is "
                    "not a distribution over the vocabulary (unnormalized, ruled out on PR #779/#982)"),
                    severity=severity, evidence=[(stack.lineno, "experts stacked for the gold-token mixture"),
                                                 (defined.lineno, "an expert computed without the scored token"),
                                                 *guards])

    def _gold_only_ratio(self, div: ast.BinOp, flow: FunctionFlow, facts) -> list[tuple[int, str]] | None:
        numerators = list(_lookups(div.left, flow))
        denominators = list(_lookups(div.right, flow))
        for num in numerators:
            for den in denominators:
                if ast.unparse(num.value) == ast.unparse(den.value):
                    continue
                evidence = _key_adds_token(num, den, flow, facts)
                if evidence is not None:
                    if evidence[1] == "tuple" and not _reaches_log(div, flow):
                        continue
                    if evidence[1] == "tuple" and smoothing_normalised(div.left, div.right) \
                            and row_sums(facts.tree, ast.unparse(num.value), ast.unparse(den.value)):
                        continue  # a dense per-row table over the vocabulary divided by its row sums: normalised
                    return [
                        (evidence[0], "lookup key = context combined with the token being scored"),
                        (num.lineno, f"numerator: count lookup {ast.unparse(num)[:60]}"),
                        (div.lineno, "gold-token probability as a count ratio"),
                    ]
        return None


def _lookups(expr: ast.AST, flow: FunctionFlow, depth: int = 3) -> list[ast.Subscript]:
    """Table lookups (``t[key]``, not slices) in EXPR or in the definitions of the names it reads."""
    out: list[ast.Subscript] = []
    seen: set[str] = set()
    frontier = [expr]
    for _ in range(depth):
        nxt: list[ast.AST] = []
        for current in frontier:
            for sub in ast.walk(current):
                if isinstance(sub, ast.Subscript) and not _has_slice(sub.slice):
                    out.append(sub)
                if isinstance(sub, ast.Name) and sub.id not in seen:
                    seen.add(sub.id)
                    nxt.extend(flow.defs.get(sub.id, ()))
        frontier = nxt
    return out


def _has_slice(index: ast.AST) -> bool:
    """Range slices (``x[i, s:e]``) select spans of a tensor; they are not table lookups."""
    parts = index.elts if isinstance(index, ast.Tuple) else [index]
    return any(isinstance(p, ast.Slice) or (isinstance(p, ast.Constant) and p.value is Ellipsis) for p in parts)


def _calls_hashing_helper(scope: ast.AST, facts) -> bool:
    """True when SCOPE unpacks keys from a local helper that hashes (``ctx_h, full_h = self._hashes(...)``)."""
    flow = facts.flow(scope)
    return any(_may_hash(callee) for call, _ in flow.unpacked.values() for callee in facts.callees(call))


def _may_hash(scope: ast.AST) -> bool:
    """Cheap pre-filter: a function with no XOR and no multi-index lookup cannot hold this pattern."""
    for node in ast.walk(scope):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple) and not _has_slice(node.slice):
            return True
    return False


def _key_origin(key: ast.AST, flow: FunctionFlow, facts) -> tuple[ast.AST, FunctionFlow]:
    """Where a key comes from: the returned tuple element of a helper for ``a, b = helper(...)``."""
    if isinstance(key, ast.Name) and key.id in flow.unpacked:
        call, index = flow.unpacked[key.id]
        for callee in facts.callees(call):
            callee_flow = facts.flow(callee)
            for ret in ast.walk(callee):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple) and len(ret.value.elts) > index:
                    return ret.value.elts[index], callee_flow
    return key, flow


def _key_adds_token(num: ast.Subscript, den: ast.Subscript, flow: FunctionFlow, facts) -> tuple[int, str] | None:
    """Line and kind when NUM's key is DEN's context combined with one more token."""
    num_key, num_flow = _key_origin(num.slice, flow, facts)
    den_key, den_flow = _key_origin(den.slice, flow, facts)
    # counts[prev, tgt] / totals[prev]
    if isinstance(num_key, ast.Tuple) and len(num_key.elts) >= 2:
        head = num_key.elts[:-1]
        den_parts = den_key.elts if isinstance(den_key, ast.Tuple) else [den_key]
        if [ast.unparse(e) for e in head] == [ast.unparse(e) for e in den_parts]:
            if not _full_vocab(num_key.elts[-1], num_flow):
                return num.lineno, "tuple"
        return None
    den_names = den_flow.closure(den_key)
    if not den_names:
        return None
    combine = num_flow.find_origin(num_key, lambda n: _combines_extra_token(n, num_flow, den_names, num_key))
    if combine is None:
        return None
    return combine.lineno, "hash"


def _combines_extra_token(node: ast.AST, flow: FunctionFlow, context_names: frozenset[str], key: ast.AST) -> bool:
    """A hash step ``h ^ (tok * P)`` or an index ``prev * V + tok`` whose token side is not in the context key."""
    if not isinstance(node, ast.BinOp):
        return False
    if not (
        isinstance(node.op, ast.BitXor)
        # ``prev * V + tgt`` only as the lookup index itself: elsewhere it is ordinary offset arithmetic.
        or (node is key and isinstance(node.op, ast.Add) and any(_is_mult(side) for side in (node.left, node.right)))
    ):
        return False
    left, right = flow.closure(node.left), flow.closure(node.right)
    for ctx_side, tok_side, tok_node in ((left, right, node.right), (right, left, node.left)):
        if ctx_side & context_names and (tok_side - context_names) and not _full_vocab(tok_node, flow):
            # The token side must be a value, not a constant mask or shift.
            if any(isinstance(n, (ast.Name, ast.Subscript, ast.Attribute)) for n in ast.walk(tok_node)):
                return True
    return False


def _is_mult(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.LShift))


def _full_vocab(node: ast.AST, flow: FunctionFlow, depth: int = 3) -> bool:
    """True when NODE enumerates candidate tokens (``np.arange(V)``): a full-vocabulary distribution."""
    frontier, seen = [node], set()
    for _ in range(depth):
        nxt = []
        for current in frontier:
            for sub in ast.walk(current):
                if isinstance(sub, ast.Call) and last_name(sub.func) == "arange":
                    return True
                if isinstance(sub, ast.Name) and sub.id not in seen:
                    seen.add(sub.id)
                    nxt.extend(v for v in flow.defs.get(sub.id, ()) if not isinstance(v, ast.Call) or last_name(v.func) != "range")
        frontier = nxt
    return False


def _reaches_log(div: ast.BinOp, flow: FunctionFlow) -> bool:
    """True when a log() in the same function depends on the ratio (the ratio is scored, not a loss weight)."""
    targets = {name for name, values in flow.defs.items() if any(v is div or _contains(v, div) for v in values)}
    for node in ast.walk(flow.scope):
        if isinstance(node, ast.Call) and last_name(node.func) in ("log", "log2", "log1p"):
            if _contains(node, div) or (targets and flow.closure(node) & targets):
                return True
    return False


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    return any(sub is inner for sub in ast.walk(outer))

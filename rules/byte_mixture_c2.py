"""BYTE-MIXTURE-C2: a token's log-probability spread over its bytes and mixed with a byte-level model."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import (
    FILL_METHODS,
    FUNC_TYPES,
    LOOP_TYPES,
    guarded_severity,
    last_name,
    script_facts,
    value_origins,
)
from rules.base import Invalid, Rule, Valid

_LOG_PROB = frozenset({"log_softmax", "cross_entropy", "nll_loss", "log_prob", "log", "log2"})  # model scores
_BYTES = frozenset({"encode", "bytes", "bytearray", "id_to_piece", "IdToPiece"})  # a token's bytes (or its piece)
_REDUCTIONS = frozenset({"sum", "mean", "nansum", "numel", "count_nonzero", "cumsum", "fsum"})
_MIXERS = frozenset({"logaddexp", "logaddexp2", "logsumexp", "lerp"})


class ByteMixtureC2(Rule):
    """Flags per-token division of a log-probability by that token's byte length inside a per-token loop.

    Why: spreading the realized token's log-probability over its bytes and mixing per byte with a PPM-style model
    is not a normalized distribution over tokens (C2). Issue #1872; cocohearts excluded the PPM-D/byte-mixture rows
    in PR #1902 (maintainer ruling).

    Instead: mix at the token level over the whole vocabulary; divide total nats by total bytes only once, for
    the bpb conversion.
    """

    ID = "BYTE-MIXTURE-C2"
    CODE = "PG104"
    MESSAGE = "token log-probability spread over its bytes for a per-byte mixture: not a distribution over tokens"
    VALID = [
        Valid(
            "def bpb(loss_sum, byte_count):\n"
            "    return loss_sum / math.log(2) / byte_count\n",
            name="aggregate nats / bytes",
        ),
        Valid(
            "def per_token_bpb(nll, lut, ids):\n"
            "    out = []\n"
            "    for i, t in enumerate(ids):\n"
            "        out.append(nll[i])\n"
            "    return sum(out) / sum(len(lut[t]) for t in ids)\n",
            name="aggregate division after the loop",
        ),
        Valid(
            "def report_weights(weights, orders):\n"
            "    notes = []\n"
            "    for k in orders:\n"
            "        row = weights[k]\n"
            "        mean_w = sum(row) / len(row)\n"
            "        notes.append(f'order {k}: mean weight {mean_w:.2f}')\n"
            "    print(' '.join(notes))\n",
            name="average of per-order scalar weights, printed",
        ),
        Valid(
            "def blend(p_model, p_cache, orders):\n"
            "    scale = {k: [1.0, 1.0, 1.0] for k in orders}\n"
            "    for k in orders:\n"
            "        cells = scale[k]\n"
            "        alpha = 0.3 * max(cells) / len(cells)\n"
            "        p_model[k] = (1.0 - alpha) * p_model[k] + alpha * p_cache[k]\n"
            "    return p_model\n",
            name="a row of scalar weights over its length, feeding a mix: no log-probability, no byte count",
        ),
    ]
    INVALID = [
        Invalid(
            "def mix(ids, logp, lut):\n"
            "    stream = []\n"
            "    for i, tid in enumerate(ids):\n"
            "        tb = lut[tid]\n"
            "        n_bytes = len(tb)\n"
            "        per_byte = logp[i] / n_bytes\n"
            "        for b in tb:\n"
            "            stream.append((b, per_byte))\n"
            "    return stream\n",
            expected_line=6,
            name="#1835 decoded shape",
        ),
        Invalid(
            "def spread(ids, logp, lut):\n"
            "    for i in range(len(ids)):\n"
            "        yield logp[i] / len(lut[ids[i]])\n",
            expected_line=3,
            name="inline length",
        ),
        Invalid(
            "def byte_mix(logits, targets, pieces, byte_model, lam):\n"
            "    nll = F.cross_entropy(logits, targets, reduction='none')\n"
            "    total = 0.0\n"
            "    for i, tok in enumerate(targets.tolist()):\n"
            "        raw = pieces[tok].encode('utf-8')\n"
            "        share = -nll[i] / len(raw)\n"
            "        for b in raw:\n"
            "            q = lam * math.exp(share) + (1 - lam) * byte_model.prob(b)\n"
            "            total -= math.log(q)\n"
            "            byte_model.update(b)\n"
            "    return total\n",
            expected_line=6,
            name="token NLL spread over its UTF-8 bytes and mixed per byte with a byte model",
        ),
        Invalid(
            "def even_share(value, count):\n"
            "    return value / count\n"
            "def score(logits, ids, table, other):\n"
            "    logp = torch.log_softmax(logits, -1)\n"
            "    out = []\n"
            "    for i, t in enumerate(ids):\n"
            "        w = even_share(logp[i, t], len(table[t]))\n"
            "        for b in table[t]:\n"
            "            out.append(np.logaddexp(w + math.log(0.5), other.logp(b) + math.log(0.5)))\n"
            "    return out\n",
            expected_line=7,
            name="evasion: the division happens in a helper",
        ),
        Invalid(
            "def spread_mix(nll, targets, sp, ppm):\n"
            "    sizes = [len(sp.id_to_piece(k).encode('utf-8')) for k in range(sp.vocab_size())]\n"
            "    width = sizes\n"
            "    bits = 0.0\n"
            "    for i, tok in enumerate(targets):\n"
            "        share = -nll[i] / width[tok]\n"
            "        for _ in range(width[tok]):\n"
            "            bits -= math.log2(0.5 * math.exp(share) + 0.5 * ppm.next_prob())\n"
            "    return bits\n",
            expected_line=6,
            name="evasion: a renamed table of byte lengths",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        self._loads: dict[int, dict[str, list[ast.Name]]] = {}
        self._held: dict[tuple[int, str], bool | None] = {}
        self._sources: dict[tuple[int, str], ast.AST | None] = {}  # the origin that made _held True
        reported: set[int] = set()
        for info in facts.graph.functions:
            for node in info.nodes:
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                    for num, den, anchor, via in _placements(facts, info, node):
                        evidence = self._judge(facts, num, den, anchor)
                        if evidence is not None and anchor.lineno not in reported:
                            reported.add(anchor.lineno)
                            severity, guards = guarded_severity(self, anchor)
                            helper = [(via.lineno, "the division, in the helper called here")] if via else []
                            self.report(anchor, severity=severity, evidence=[*evidence, *helper, *guards])

    def _judge(self, facts, num: ast.AST, den: ast.AST, anchor: ast.AST) -> list[tuple[int, str]] | None:
        """Evidence that NUM / DEN at ANCHOR spreads a token's log-probability over its bytes and mixes it per
        byte; None when any of the three is absent (or shown otherwise where the data flow is visible)."""
        flow = facts.flow_of(anchor)
        loops = list(facts.enclosing(anchor, LOOP_TYPES))
        loop_vars = {n.id for loop in loops if isinstance(loop, ast.For) for n in ast.walk(loop.target)
                     if isinstance(n, ast.Name)}
        length = _near_origin(den, flow, lambda n: _token_byte_length(n, flow, loop_vars)) if loops else None
        if length is not None and _averages(num, length.args[0]):
            return None  # sum(x) / len(x): a mean of scalars
        if length is not None and self._holds(facts, length.args[0], _is_bytes) is False:
            length = None  # len(table[k]) of a visible table that holds no bytes (a row of weights, counts)
        fate = self._fate(facts, anchor)  # the cheap tests first: where the value goes, what it is, what divides it
        score = None if fate is None else self._holds(facts, num, _is_log_prob)
        if fate is None or score is False or (not loops and (score is None or fate[0] != "mixed")):
            return None
        lookup = length or self._byte_length_lookup(facts, den)
        if lookup is None:
            return None
        notes = [(lookup.lineno, f"byte count of the token: `{ast.unparse(lookup)[:50]}`"),
                 (anchor.lineno, "the token's log-probability divided by it")]
        source = self._sources.get((id(num), _is_log_prob.__name__))
        if source is not None and hasattr(source, "lineno"):
            notes.append((source.lineno, f"the token's log-probability comes from `{ast.unparse(source)[:50]}`"))
        notes.append((fate[1], "the per-byte value is mixed there with another model's probability" if fate[0] ==
                      "mixed" else "the per-byte values leave the unit here; the mixing is not in this file"))
        return notes

    def _fate(self, facts, anchor: ast.AST) -> tuple[str, int] | None:
        """("mixed", line) when the value at ANCHOR is added to (or log-added with) a value that does not derive from
        it; ("escapes", line) when it leaves the unit (returned to no caller here, yielded); None when it is only
        printed, compared or summed."""
        escapes, todo, seen, tainted = None, [anchor], set(), set()
        while todo and len(seen) < 300:
            child = todo.pop()
            if id(child) in seen:
                continue
            seen.add(id(child))
            parent = facts.parents.get(child)
            while parent is not None and not isinstance(parent, (ast.FormattedValue, ast.Compare)):
                if isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Add, ast.Sub)):
                    other = parent.right if child is parent.left else parent.left
                    if _independent(facts, other, tainted | _bound_by(facts, parent)):
                        return "mixed", parent.lineno
                if isinstance(parent, ast.Call) and child is not parent.func:
                    if last_name(parent.func) in _MIXERS and any(
                            a is not child and _independent(facts, a, tainted) for a in parent.args):
                        return "mixed", parent.lineno
                    if isinstance(parent.func, ast.Attribute) and parent.func.attr in FILL_METHODS:
                        todo += self._taint(facts, parent.func.value, tainted)  # a list of per-byte values
                        escapes = escapes or _kept_on_object(parent.func.value)
                        break
                if isinstance(parent, ast.Return):
                    sites = facts.graph.func_of_node[facts.enclosing_function(parent)].call_sites
                    todo += [call for _, call in sites]
                    escapes = escapes or (None if sites else ("escapes", parent.lineno))
                    break
                if isinstance(parent, (ast.Yield, ast.YieldFrom)):
                    escapes = escapes or ("escapes", parent.lineno)
                    break
                if isinstance(parent, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For)):
                    targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
                    todo += [use for t in targets for use in self._taint(facts, t, tainted)]
                    escapes = escapes or next(filter(None, map(_kept_on_object, targets)), None)
                    break
                if isinstance(parent, ast.stmt) or (isinstance(parent, ast.Subscript) and child is parent.slice):
                    break  # a statement that only uses the value, or an index computed from it
                child, parent = parent, facts.parents.get(parent)
        return escapes

    def _taint(self, facts, target: ast.AST, tainted: set[str]) -> list[ast.Name]:
        """The reads of the names TARGET binds (``x``, ``x[i]``, ``a, b``), in its function; marks them tainted."""
        while isinstance(target, ast.Subscript):
            target = target.value
        names = [] if isinstance(target, ast.Attribute) else [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
        tainted.update(names)
        scope = facts.enclosing_function(target)
        if id(scope) not in self._loads:
            self._loads[id(scope)] = loads = {}
            for node in facts.nodes_of(scope):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    loads.setdefault(node.id, []).append(node)
        return [use for name in names for use in self._loads[id(scope)].get(name, ())]

    def _holds(self, facts, expr: ast.AST, predicate) -> bool | None:
        """True when a value EXPR is computed from satisfies PREDICATE; None when part of it comes from outside the
        unit (a parameter no call here passes); False when the whole visible computation has none."""
        key = (id(expr), predicate.__name__)
        if key not in self._held:
            origins = value_origins(facts, expr)
            source = next((o for o in origins if predicate(o)), None)
            self._sources[key] = source
            self._held[key] = True if source is not None else None if any(
                isinstance(o, ast.arg) for o in origins) else False
        return self._held[key]

    def _byte_length_lookup(self, facts, den: ast.AST) -> ast.AST | None:
        """A ``len()`` of one token's bytes that DEN is computed from with no sum on the way (``lengths[token]`` of a
        table filled per token with ``len(piece.encode())``, or ``len(token_bytes(t))``); None otherwise."""
        for node in value_origins(facts, den, limit=60):
            if isinstance(node, ast.Call) and last_name(node.func) in _REDUCTIONS or _accumulated(facts, node):
                return None  # total bytes of many tokens (a sum, or `count += n`): the aggregate bpb conversion
            if isinstance(node, ast.Call) and last_name(node.func) == "len" and len(node.args) == 1 \
                    and self._holds(facts, node.args[0], _is_bytes) and _per_item(facts, node):
                return node
        return None


def _placements(facts, info, div: ast.BinOp):
    """(numerator, divisor, anchor, helper division) for DIV: in place, or, when its operands are parameters of a
    helper, at every call of the helper with the arguments passed there (the loop and the mixing are the caller's)."""
    params = {name: i for i, name in enumerate(info.params)}
    if not info.call_sites or not any(isinstance(s, ast.Name) and s.id in params for s in (div.left, div.right)):
        yield div.left, div.right, div, None
        return
    for _, call in info.call_sites:
        num, den = (_argument(facts, call, params, side) for side in (div.left, div.right))
        if num is not None and den is not None:
            yield num, den, call, div


def _argument(facts, call: ast.Call, params: dict[str, int], side: ast.AST) -> ast.AST | None:
    """What CALL passes for the parameter SIDE names (SIDE itself when it is no parameter; None when not passed)."""
    if not (isinstance(side, ast.Name) and side.id in params):
        return side
    given = [k.value for k in call.keywords if k.arg == side.id]
    at = params[side.id] - facts.graph.resolved[call][1]
    return given[0] if given else call.args[at] if 0 <= at < len(call.args) else None


def _kept_on_object(target: ast.AST) -> tuple[str, int] | None:
    """("escapes", line) when TARGET stores on an object (``self.buf[i] = v``, ``obj.values``): it outlives the call."""
    while isinstance(target, ast.Subscript):
        target = target.value
    return ("escapes", target.lineno) if isinstance(target, ast.Attribute) else None


def _accumulated(facts, node: ast.AST) -> bool:
    """NODE is a name summed up in its function (``count += n``)."""
    if not isinstance(node, ast.Name):
        return False
    scope = facts.enclosing_function(node)
    if ("sums", id(scope)) not in facts.values:  # the shared per-tree cache of rules.analysis.dataflow
        facts.values[("sums", id(scope))] = {n.target.id: [] for n in facts.nodes_of(scope) if isinstance(
            n, ast.AugAssign) and isinstance(n.op, ast.Add) and isinstance(n.target, ast.Name)}
    return node.id in facts.values[("sums", id(scope))]


def _per_item(facts, node: ast.Call) -> bool:
    """NODE runs once per item: inside a loop or comprehension whose variable its argument is computed from."""
    scope_flow = facts.flow_of(node)
    targets: set[str] = set()
    current = facts.parents.get(node)
    while current is not None and not isinstance(current, FUNC_TYPES):
        loops = [current] if isinstance(current, (ast.For, ast.AsyncFor)) else getattr(current, "generators", [])
        targets |= {n.id for loop in loops for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        current = facts.parents.get(current)
    return bool(scope_flow.closure(node.args[0]) & targets)


def _is_log_prob(node: ast.AST) -> bool:
    """A model score: log-softmax, cross-entropy, NLL, or the log of a non-constant (a probability)."""
    return isinstance(node, ast.Call) and last_name(node.func) in _LOG_PROB and not (
        node.args and isinstance(node.args[0], ast.Constant))


def _is_bytes(node: ast.AST) -> bool:
    """A token's bytes or piece: ``s.encode()``, ``bytes(...)``, a piece of the tokenizer, a bytes literal."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bytes)
    return isinstance(node, ast.Call) and last_name(node.func) in _BYTES


def _averages(num: ast.AST, counted: ast.AST) -> bool:
    """NUM reduces the very collection whose length is the divisor (``sum(row) / len(row)``)."""
    while isinstance(num, (ast.UnaryOp, ast.Call)) and not (isinstance(num, ast.Call) and
                                                            last_name(num.func) in _REDUCTIONS):
        num = num.operand if isinstance(num, ast.UnaryOp) else (num.args[0] if num.args else None)
    if not isinstance(num, ast.Call):
        return False
    reduced = num.args[0] if num.args else getattr(num.func, "value", None)
    return reduced is not None and ast.dump(reduced) == ast.dump(counted)


def _independent(facts, expr: ast.AST, tainted: set[str]) -> bool:
    """EXPR reads some variable (a name assigned or passed in, not an imported module) and none of the TAINTED
    names: another quantity, not a constant such as ``math.log(0.5)``."""
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and len(value_origins(facts, n, limit=2)) > 1}
    return bool(names) and not names & tainted


def _bound_by(facts, node: ast.AST) -> set[str]:
    """Names the statement around NODE assigns (``s = s + v`` accumulates s: s is not another quantity)."""
    while node is not None and not isinstance(node, ast.stmt):
        node = facts.parents.get(node)
    targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _near_origin(expr: ast.AST, flow, predicate) -> ast.AST | None:
    """A node satisfying PREDICATE in EXPR or in the direct definitions of the names it reads (one step)."""
    candidates = [expr] + [v for n in ast.walk(expr) if isinstance(n, ast.Name) for v in flow.defs.get(n.id, ())]
    for candidate in candidates:
        for sub in ast.walk(candidate):
            if predicate(sub):
                return sub
    return None


def _token_byte_length(node: ast.AST, flow, loop_vars: set[str]) -> bool:
    """``len(lut[token])`` (directly or through ``tb = lut[token]``): the byte string of one token."""
    if not (isinstance(node, ast.Call) and last_name(node.func) == "len" and len(node.args) == 1):
        return False
    arg = node.args[0]
    if isinstance(arg, ast.Name):
        values = flow.defs.get(arg.id, ())
        return bool(values) and all(_lut_lookup(v, loop_vars, flow) for v in values)
    return _lut_lookup(arg, loop_vars, flow)


def _lut_lookup(node: ast.AST, loop_vars: set[str], flow) -> bool:
    """``table[token_id]`` where the index is the per-token loop's variable (or ``ids[i]``); a conditional lookup
    (``table[t] if t < n else b""``) counts, or an encoding of one (``table[t].encode()``)."""
    if isinstance(node, ast.IfExp):
        branches = [node.body, node.orelse]
        return any(_lut_lookup(b, loop_vars, flow) for b in branches) and all(
            isinstance(b, ast.Constant) or _lut_lookup(b, loop_vars, flow) for b in branches)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and last_name(node.func) in _BYTES:
        node = node.func.value
    if not isinstance(node, ast.Subscript):
        return False
    index = node.slice
    if not isinstance(index, (ast.Name, ast.Subscript, ast.Call)):
        return False
    if isinstance(node.value, ast.Name) and node.value.id in loop_vars:
        return False  # windows[k]: an item of the iterated collection, not a table lookup
    return bool(flow.closure(index) & loop_vars)

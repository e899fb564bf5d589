"""BPB-BYTE-LUT: a per-token byte table that does not count the bytes of the validation text."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import last_name, script_facts
from rules.base import Invalid, Rule, Valid


class BpbByteLut(Rule):
    """Flags byte LUT builders that double-count the leading space or count byte-fallback pieces by their text.

    Why: the bpb denominator must be the UTF-8 bytes of the validation text (#1017 §V). A ``+1`` baked into the
    table and added again in the accumulator inflated the denominator by about 17 % (issue #1719, #1698); counting
    byte pieces as 3 bytes got the Scylla record removed by cocohearts (#1184, maintainer ruling).

    Instead: the canonical ``build_sentencepiece_luts``: strip the leading "▁" and count the UTF-8 bytes of the
    rest; ``is_byte`` pieces count 1; control, unknown and unused pieces are boundaries with 0 bytes; add the space
    once, in the accumulator (``has_leading_space[tgt] & ~is_boundary[prev]``).
    """

    ID = "BPB-BYTE-LUT"
    CODE = "PG111"
    MESSAGE = "byte-count LUT does not match the bytes of the text"
    VALID = [
        Valid(
            "def build_sentencepiece_luts(sp, V):\n"
            "    base_bytes_lut = np.zeros(V)\n"
            "    for i in range(V):\n"
            "        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):\n"
            "            continue\n"
            "        if sp.is_byte(i):\n"
            "            base_bytes_lut[i] = 1\n"
            "            continue\n"
            "        piece = sp.id_to_piece(i)\n"
            "        if piece.startswith('\\u2581'):\n"
            "            piece = piece[1:]\n"
            "        base_bytes_lut[i] = len(piece.encode('utf-8'))\n"
            "    return base_bytes_lut\n"
            "def count(tb, lead, bnd, tgt, prev):\n"
            "    return tb[tgt] + (lead[tgt] & ~bnd[prev])\n",
            name="canonical build_sentencepiece_luts",
        ),
        Valid(
            "def luts(sp, V):\n"
            "    out = np.zeros(V)\n"
            "    for i in range(V):\n"
            "        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):\n"
            "            continue\n"
            "        if sp.is_byte(i):\n"
            "            out[i] = 1\n"
            "            continue\n"
            "        p = sp.id_to_piece(i)\n"
            "        out[i] = len(p[1:].encode()) + 1 if p.startswith('\\u2581') else len(p.encode())\n"
            "    return out\n",
            name="space baked into the table and never added again: one +1 path",
        ),
        Valid(
            "def token_keys(sp, V):\n"
            "    keys = {}\n"
            "    for i in range(V):\n"
            "        text = sp.id_to_piece(i).replace('\\u2581', ' ').lower()\n"
            "        keys.setdefault(text, len(keys))\n"
            "    return keys\n",
            name="near-miss: a table of piece texts (a lookup key for a memory) measures no bytes",
        ),
    ]
    INVALID = [
        Invalid(
            "def build_luts(sp, V):\n"
            "    base = torch.zeros(V)\n"
            "    for i in range(V):\n"
            "        piece = sp.id_to_piece(i)\n"
            "        if piece.startswith('\\u2581'):\n"
            "            base[i] = len(piece[1:].encode('utf-8')) + 1\n"
            "        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):\n"
            "            pass\n"
            "        if sp.is_byte(i):\n"
            "            base[i] = 1\n"
            "    return base\n"
            "def count(tb, lead, bnd, tgt, prev):\n"
            "    return tb[tgt] + (lead[tgt] & ~bnd[prev])\n",
            expected_line=6,
            name="#1698: +1 in the table and again in the accumulator",
        ),
        Invalid(
            "def build_luts(sp, V):\n"
            "    base = torch.zeros(V)\n"
            "    for i in range(V):\n"
            "        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):\n"
            "            continue\n"
            "        base[i] = len(sp.id_to_piece(i).lstrip('\\u2581').encode())\n"
            "    return base\n",
            expected_line=1,
            name="byte-fallback pieces counted by their text '<0xE2>'",
        ),
        Invalid(
            "def denominators(proc, V):\n"
            "    widths = torch.zeros(V)\n"
            "    for t in range(V):\n"
            "        s = proc.id_to_piece(t)\n"
            "        s = s[1:] if s.startswith('\\u2581') else s\n"
            "        widths[t] = len(bytes(s, 'utf-8'))\n"
            "    return widths\n",
            expected_line=1,
            name="renamed, reshaped: the length of the piece's bytes through an alias, no is_byte branch",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        accumulator = _accumulator_space_term(facts)
        for info in facts.graph.functions[1:]:
            calls = {last_name(n.func): n for n in info.nodes if isinstance(n, ast.Call)}
            if "id_to_piece" not in calls or not _measures_pieces(info, facts):
                continue  # a table of piece texts (a lookup key, a vocabulary map) counts no bytes
            plus_one = _baked_space(info.nodes)
            if plus_one is not None and accumulator is not None:
                self.report(plus_one, "leading space counted twice: +1 in the byte table and again in the accumulator",
                            evidence=[(plus_one.lineno, "table entry = len(piece) + 1"),
                                      (accumulator.lineno, "accumulator adds has_leading_space[tgt] & ~is_boundary[prev]")])
            if "is_byte" not in calls:
                self.report(info.node, "byte-fallback pieces are not counted as 1 byte (no is_byte branch)",
                            evidence=[(calls["id_to_piece"].lineno, "piece text length used for every token")])
            elif "is_unused" not in calls:
                self.report(info.node, "unused pieces are not treated as 0-byte boundaries (no is_unused test)",
                            severity="warning", evidence=[(calls["is_byte"].lineno, "boundary predicate lacks is_unused")])


def _measures_pieces(info, facts) -> bool:
    """Whether the function takes the length of a piece's text (`len(piece.encode())`, `len(sp.id_to_piece(i))`):
    what makes a table of pieces a byte count."""
    flow = facts.flow(info.node)
    pieces = {name for name, values in flow.defs.items()
              if any(isinstance(n, ast.Call) and last_name(n.func) == "id_to_piece" for v in values for n in ast.walk(v))}
    for node in info.nodes:
        if isinstance(node, ast.Call) and last_name(node.func) == "len" and node.args:
            arg = node.args[0]
            if any(isinstance(n, ast.Call) and last_name(n.func) == "id_to_piece" for n in ast.walk(arg)):
                return True
            if pieces & flow.closure(arg):
                return True
    return False


def _baked_space(nodes) -> ast.AST | None:
    """``table[i] = len(...) + 1`` (or ``1 + len(...)``)."""
    for node in nodes:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            value = node.value
            if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
                sides = (value.left, value.right)
                if any(isinstance(s, ast.Constant) and s.value == 1 for s in sides) and any(
                    isinstance(s, ast.Call) and last_name(s.func) == "len" for s in sides
                ):
                    return node
    return None


def _accumulator_space_term(facts) -> ast.AST | None:
    """The ``lead[tgt] & ~boundary[prev]`` term that adds the space byte at scoring time."""
    for info in facts.graph.functions:
        for node in info.nodes:
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
                right = node.right
                if isinstance(node.left, ast.Subscript) and isinstance(right, ast.UnaryOp) and isinstance(right.op, ast.Invert):
                    return node
    return None

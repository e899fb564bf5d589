"""NGRAM-GATE-ON-TARGET: whether an eval-time n-gram expert fires depends on the token being predicted."""

from __future__ import annotations

import ast
import re

from rules.analysis.dataflow import guarded_severity, script_facts
from rules.base import Invalid, Rule, Valid

_TARGET_NAMES = re.compile(r"^(y|y_batch|targets?|tgt|target_ids|tgt_ids|y_np)$")
_FOR_LOOP = re.compile(r"\bfor\s*\(\s*(?:[\w:<>]+\s+)*(\w+)\s*=[^;]*;\s*\1\s*<[^;]*;[^)]*\)\s*\{")


class NgramGateOnTarget(Rule):
    """Flags n-gram hint gates computed from the target token: LUT flags of ``y``/``tokens[i]`` deciding a hint.

    Why: even a normalized tilt breaks C1 when whether a hint fires depends on x_t (its boundary or new-word flag).
    The causality bug was acknowledged on PR #1420; #1514's README describes the fix; codemath3000 and
    andrewbaggio1 flagged #2118 (online_ngram_state.c) citing #1514 as precedent (community + indirect maintainer
    check). A static match is a warning; a runtime C1 probe makes it an error.

    Instead: gate on the previous token (``tokens[i-1]``), write the hint for position i before reading
    ``tokens[i]``, and update the tables with ``tokens[i]`` only after the hint is written.
    """

    ID = "NGRAM-GATE-ON-TARGET"
    CODE = "PG102"
    MESSAGE = "n-gram hint gate depends on the target token's own flags (boundary / new word): C1 violation"
    VALID = [
        Valid(
            "def hints(prev_ids, boundary_lut, table):\n"
            "    gate = ~boundary_lut[prev_ids]\n"
            "    return torch.where(gate, table[prev_ids], -1)\n",
            name="gate on the previous token",
        ),
        Valid(
            "def bytes_of(y, base_bytes_lut):\n"
            "    return base_bytes_lut[y].sum()\n",
            name="byte LUT on the targets is not a gate",
        ),
    ]
    INVALID = [
        Invalid(
            "def hints(y, boundary_lut, table, prev):\n"
            "    within_ok = ~boundary_lut[y]\n"
            "    hint = torch.where(within_ok, table[prev], -1)\n"
            "    return hint\n",
            expected_line=3,
            name="eligibility from the target's boundary flag",
        ),
        Invalid(
            "def hints(targets, new_word_lut, table, prev):\n"
            "    mask = new_word_lut[targets] == 0\n"
            "    out = table[prev].clone()\n"
            "    out[~mask] = -1\n"
            "    return out\n",
            expected_line=4,
            name="mask applied by assignment",
        ),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        for info in facts.graph.functions[1:]:
            targets = {p for p in info.params if _TARGET_NAMES.match(p)}
            if not targets:
                continue
            flow = facts.flow(info.node)
            flags: dict[str, int] = {}
            for node in info.nodes:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    if any(_lut_on(sub, targets) for sub in ast.walk(node.value)):
                        flags[node.targets[0].id] = node.lineno
            if not flags:
                continue
            for node in info.nodes:
                gate = _gating_use(node, flags, flow)
                if gate is not None:
                    name, line = gate
                    severity, guards = guarded_severity(self, node)
                    self.report(node, severity=severity, evidence=[
                        (flags[name], f"`{name}` is a lookup on the target token"),
                        (line, "it decides whether the hint applies"), *guards])
                    break


def _lut_on(node: ast.AST, targets: set[str]) -> bool:
    """``lut[y]`` where the lut is a flag table (boundary / new-word / space), not the byte table."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name) and node.slice.id in targets):
        return False
    table = ast.unparse(node.value).lower()
    return "bytes" not in table and any(key in table for key in ("bound", "word", "space", "flag", "lut"))


def _gating_use(node: ast.AST, flags: dict[str, int], flow) -> tuple[str, int] | None:
    """A where()/masked assignment whose condition is one of FLAGS."""
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "where" and node.args:
        names = {n.id for n in ast.walk(node.args[0]) if isinstance(n, ast.Name)} & flags.keys()
        if names:
            return sorted(names)[0], node.lineno
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
        names = {n.id for n in ast.walk(node.targets[0].slice) if isinstance(n, ast.Name)} & flags.keys()
        if names:
            return sorted(names)[0], node.lineno
    return None


def scan_native(path: str, text: str) -> list[tuple[int, str]]:
    """(line, note) for each per-position loop in C/C++ TEXT that gates a hint on the current token's LUT flags.

    Pattern (#2118 online_ngram_state.c): inside ``for (i...)``, ``tok = tokens[i]``; ``flag = lut[tok]``; an
    ``if`` testing the flag; a write ``out[i] = ...`` after it. A flag read after the last hint write (a table
    update, #1514's causal fix) is not reported.
    """
    violations: list[tuple[int, str]] = []
    for loop in _FOR_LOOP.finditer(text):
        var = loop.group(1)
        body_start = loop.end()
        body_end = _matching_brace(text, body_start - 1)
        body = text[body_start:body_end]
        base_line = text.count("\n", 0, body_start) + 1  # line of the loop's opening brace
        current = {m.group(1): m.start() for m in re.finditer(
            rf"(\w+)\s*=\s*(?:\w+\s*\(\s*)?\w+\s*\[\s*{var}\s*\]\s*\)?\s*;", body)}
        current = {name: pos for name, pos in current.items() if not re.search(rf"\b{name}\s*\[", body[:pos])}
        if not current:
            continue
        writes = [m.start() for m in re.finditer(rf"\b\w+\s*\[\s*{var}\s*\]\s*=[^=]", body)]
        for tok, tok_pos in current.items():
            for flag in re.finditer(rf"(\w+)\s*=\s*[^;]*?\w+\s*\[\s*{tok}\s*\]\s*;", body[tok_pos:]):
                name, flag_pos = flag.group(1), tok_pos + flag.start()
                if name == tok:
                    continue
                for cond in re.finditer(rf"\bif\s*\([^{{;]*\b{name}\b", body[flag_pos:]):
                    cond_pos = flag_pos + cond.start()
                    if any(w > cond_pos for w in writes):
                        line = base_line + body.count("\n", 0, cond_pos)
                        if any(existing == line for existing, _ in violations):
                            break
                        violations.append((line, (
                            f"{path}:{line}: hint for position {var} gated on `{name}` "
                            f"(line {base_line + body.count(chr(10), 0, flag_pos)}), a LUT flag of the current "
                            f"token `{tok}` (line {base_line + body.count(chr(10), 0, tok_pos)})")))
                        break
    return violations


def _matching_brace(text: str, open_pos: int) -> int:
    depth = 0
    for index in range(open_pos, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return len(text)

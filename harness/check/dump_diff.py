"""The source a log dumps against the shipped code, token by token: comments and blank lines set aside, a head that
console output overwrote, and dumps that differ only in the literal values of settings (defaults, paths, run ids)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

SMALL_EDIT_LINES = 5  # a dump at most this many lines off the shipped code is a small edit (a warning) ...
SMALL_EDIT_FRACTION = 0.02  # ... when that is also at most this share of its lines (short scripts stay strict)
GARBLED_HEAD_LINES = 30  # console output cut into the start of a dump: at most this many lines are skipped


def code_tokens(lines: list[str]) -> list[tuple[int, str, int]] | None:
    """(type, text, line) of the Python tokens of LINES, without comments, blank lines and indentation tokens
    (indentation restarts when a dump's head is lost); None when they do not tokenize."""
    return _code_tokens_of(tuple(lines))


@lru_cache(maxsize=8)  # the shipped files are compared with every log's dump: tokenize each once
def _code_tokens_of(lines: tuple[str, ...]) -> list[tuple[int, str, int]] | None:
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.INDENT, tokenize.DEDENT}
    try:
        return [(t.type, t.string, t.start[0]) for t in
                tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None


def _code_lines(lines: list[str]) -> Counter:
    return Counter(t for line in lines if (t := line.split("#", 1)[0].strip()))


def close_modulo_comments(dumped: list[str], candidate: list[str]) -> bool:
    """A cheap test before tokenizing: the two differ in few lines once comments and blank lines are dropped."""
    a, b = _code_lines(dumped), _code_lines(candidate)
    return max(sum((a - b).values()), sum((b - a).values())) <= GARBLED_HEAD_LINES + SMALL_EDIT_LINES


def same_code_but_comments(dumped: list[str], candidates: list[list[str]]) -> int | None:
    """Lines lost at the dump's head (0: none) when the rest of the dump's code equals the end of a candidate's,
    comments aside (the lost head being console output over the start of the dump); None when no candidate has
    the same code."""
    skipped, tokens = 0, code_tokens(dumped)
    while tokens is None and skipped < min(GARBLED_HEAD_LINES, len(dumped)):
        skipped += 1
        tokens = code_tokens(dumped[skipped:])
    if not tokens or len(tokens) < 50:
        return None
    for candidate in candidates:
        code = code_tokens(candidate)
        if not code:
            continue
        common = 0
        while common < min(len(tokens), len(code)) and tokens[-1 - common][:2] == code[-1 - common][:2]:
            common += 1
        dump_head = tokens[-1 - common][2] if common < len(tokens) else 0  # dump lines the match does not reach
        code_head = code[-1 - common][2] if common < len(code) else 0  # shipped lines it does not reach
        head = dumped[skipped:skipped + dump_head]
        if common >= 50 and skipped + dump_head <= GARBLED_HEAD_LINES and code_head <= GARBLED_HEAD_LINES \
                and not (head and compiles(head)):  # an unmatched head that is code is a code difference
            return skipped + dump_head
    return None


@dataclass(frozen=True)
class ChangedSetting:
    """A number or flag whose literal differs between the dump and the shipped code: `MATRIX_LR` 0.021 vs 0.022."""

    names: tuple[str, ...]  # what it can be printed or set under: the assigned name, an environment variable
    dumped: str  # the literal in the log's dump: the value the run used unless something set it
    shipped: str  # the literal in the shipped code: what a re-run of the shipped code gets unless something sets it


def _literal_text(token: tuple[int, str, int]) -> str:
    return token[1].strip("'\"bBrRuU") if token[0] == tokenize.STRING else token[1]


def literal_edit(dumped: list[str], candidates: list[list[str]]) -> tuple[int, int, list[ChangedSetting]] | None:
    """(changed settings, other changed code lines) against the closest candidate whose code equals the dump's
    once the literal values of settings are set aside and few other lines differ (a small edit: SMALL_EDIT_LINES
    and SMALL_EDIT_FRACTION). A setting is a literal assigned to a name (`LR = 0.02`,
    `lr: float = float(os.environ.get("LR", "0.02"))`) or passed as `default=`: a different default, path or run
    id is the same program run with other settings, which the log's own configuration lines show; a literal inside
    an expression (`return x + 7`) is code. None when no candidate is that close (comments never count). The third
    value is each changed number or flag (ChangedSetting), for the caller to look up in the log's configuration
    lines and the documented run command."""
    tokens = code_tokens(dumped)
    if not tokens:
        return None
    best = None
    for candidate in candidates:
        code = code_tokens(candidate)
        if not code:
            continue
        matcher = SequenceMatcher(None, [t[:2] for t in tokens], [t[:2] for t in code], autojunk=False)
        settings, lines, names = 0, set(), []
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                continue
            ours, theirs = tokens[a0:a1], code[b0:b1]
            if op == "replace" and len(ours) == len(theirs) and all(
                    _is_literal(x) and _is_literal(y) and _is_setting(code, b0 + i, candidate)
                    for i, (x, y) in enumerate(zip(ours, theirs))):
                settings += len(ours)
                names += [ChangedSetting(_setting_names(candidate, y[2]), _literal_text(x), _literal_text(y))
                          for x, y in zip(ours, theirs) if _is_value(y)]
                continue
            lines.update(t[2] for t in ours or tokens[max(a0 - 1, 0):a0 + 1])
        limit = min(SMALL_EDIT_LINES, SMALL_EDIT_FRACTION * len({t[2] for t in code}))
        if len(lines) <= limit and (best is None or (len(lines), settings) < (best[1], best[0])):
            best = (settings, len(lines), names)
    return best


def _is_value(token: tuple[int, str, int]) -> bool:
    """A number or flag (also written as a string, `'0.02'`, `"1"`), not a path or run id."""
    kind, text, _line = token
    if kind != tokenize.STRING:
        return True
    inner = text.strip("'\"bBrRuU")
    try:
        float(inner)
        return True
    except ValueError:
        return inner.lower() in ("true", "false")


_ENV_NAME = re.compile(r"""(?:environ\.get|getenv|environ\[)\s*\(?\s*["']([A-Za-z_]\w*)["']""")


def _setting_names(lines: list[str], row: int) -> tuple[str, ...]:
    """The names the setting on line ROW may be printed under: the name assigned and any environment variable read."""
    text = lines[row - 1] if 0 < row <= len(lines) else ""
    m = _SETTING_LINE.match(text)
    names = [re.sub(r"^\s*(?:self\.)?", "", m.group(0)).split(":")[0].split("=")[0].strip()] if m else []
    names += _ENV_NAME.findall(text)
    return tuple(n for n in names if n)


def _is_literal(token: tuple[int, str, int]) -> bool:
    kind, text, _line = token
    return kind in (tokenize.NUMBER, tokenize.STRING) or (kind == tokenize.NAME and text in ("True", "False", "None"))


_SETTING_LINE = re.compile(r"^\s*(?:self\.)?[A-Za-z_]\w*\s*(?::[^=]*)?=(?!=)")


def _is_setting(code: list[tuple[int, str, int]], at: int, lines: list[str]) -> bool:
    """Whether the literal token CODE[AT] is a setting's value: passed as `default=`, or on a line that assigns
    a name (module, class or `self.` attribute) from literals and calls only (no operator but a sign)."""
    if at >= 2 and code[at - 1][1] == "=" and code[at - 2][1] == "default":
        return True
    row = code[at][2]
    text = lines[row - 1] if 0 < row <= len(lines) else ""
    m = _SETTING_LINE.match(text)
    if m is None:
        return False
    rest = [t for t in code if t[2] == row and t[0] != tokenize.NEWLINE][1:]
    values = rest[next(i for i, t in enumerate(rest) if t[1] == "=") + 1:] if any(t[1] == "=" for t in rest) else []
    return bool(values) and all(t[0] in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING)
                                or t[1] in ("(", ")", ",", ".", "-", "[", "]") for t in values)


def compiles(lines: list[str]) -> bool:
    """Whether the dumped lines parse as Python (a console capture with output cut into the source does not)."""
    try:
        ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return False
    return True


# ---- where the shipped code prints a setting, and settings that only pace output ---------------------------------
_KEY_BEFORE = re.compile(r"([A-Za-z_][\w.]*)\s*[:=]\s*$")
_PACE_BLOCKERS = {"step", "backward", "add_", "copy_", "mul_", "lerp_", "sub_", "load_state_dict", "zero_grad"}


@lru_cache(maxsize=8)
def _tree(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _reads(node: ast.AST, names: frozenset[str]) -> bool:
    return any((isinstance(n, ast.Attribute) and n.attr in names) or (isinstance(n, ast.Name) and n.id in names)
               for n in ast.walk(node))


_PLAIN_CALLS = {"int", "float", "bool", "str", "min", "max", "round", "abs"}


def _plain(value: ast.AST) -> bool:
    """A value that is the setting itself up to arithmetic, a choice or a conversion (`lr if tied else lr2`), not
    something built from it (`GPT(num_layers=...)`)."""
    return all(isinstance(n.func, ast.Name) and n.func.id in _PLAIN_CALLS
               for n in ast.walk(value) if isinstance(n, ast.Call))


def print_keys(code: str, names: tuple[str, ...]) -> set[str]:
    """The keys under which CODE prints the setting NAMES: `f"embed_lr:{token_lr}"` where `token_lr` is assigned
    from `args.tied_embed_lr` prints tied_embed_lr as embed_lr. Found from the code's own f-strings (the formatted
    value reads the setting, or a variable assigned from it), not from what the key is called."""
    tree = _tree(code)
    if tree is None:
        return set()
    wanted = frozenset(names)
    derived = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and _reads(n.value, wanted)
               and _plain(n.value) for t in n.targets if isinstance(t, ast.Name)}
    reading = wanted | frozenset(derived)
    keys = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.JoinedStr):
            continue
        for before, value in zip(node.values, node.values[1:]):
            if (isinstance(value, ast.FormattedValue) and isinstance(before, ast.Constant)
                    and isinstance(before.value, str) and _reads(value.value, reading)
                    and (m := _KEY_BEFORE.search(before.value))):
                keys.add(m.group(1).split(".")[-1])
    return keys


def only_paces_output(code: str, names: tuple[str, ...]) -> bool:
    """Whether every read of the setting NAMES in CODE is an `if` test (directly, or through a variable such as
    `should_log = step % args.every == 0` that only `if` tests read) whose body does not train or average weights
    (no optimizer step, backward, in-place tensor update, augmented assignment to an element or attribute): how often a run logs or
    evaluates, which changes what the log shows but not the trained model. False when the code never reads it."""
    tree = _tree(code)
    if tree is None:
        return False
    wanted = frozenset(names)
    reads = [n for n in ast.walk(tree) if isinstance(n, (ast.Attribute, ast.Name)) and isinstance(n.ctx, ast.Load)
             and (n.attr if isinstance(n, ast.Attribute) else n.id) in wanted]
    if not reads:
        return False
    via = {}  # variable -> the assignment whose value reads the setting
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and _reads(node.value, wanted):
            via[node.targets[0].id] = node
    tested = wanted | frozenset(via)
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and _reads(n.test, tested)]
    in_tests = {id(x) for g in guards for x in ast.walk(g.test)}
    in_via = {id(x) for a in via.values() for x in ast.walk(a.value)}
    if any(id(r) not in in_tests and id(r) not in in_via for r in reads):
        return False
    if any(isinstance(n, ast.Name) and n.id in via and isinstance(n.ctx, ast.Load) and id(n) not in in_tests
           for n in ast.walk(tree)):
        return False  # the variable is used for something other than an `if` test
    for guard in guards:
        for node in (x for stmt in guard.body for x in ast.walk(stmt)):
            if (isinstance(node, ast.AugAssign) and not isinstance(node.target, ast.Name)) or (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _PACE_BLOCKERS):
                return False
    return True


def same_program(dumped: list[str], candidate: list[str]) -> bool:
    """Whether the two parse to the same syntax tree: a reformatting (wrapped lines, added parentheses, trailing
    commas, comments) of one program, not other code."""
    a, b = _tree("\n".join(dumped)), _tree("\n".join(candidate))
    return a is not None and b is not None and ast.dump(a) == ast.dump(b)

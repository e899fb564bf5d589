"""Whether a log's score line can have been printed by the shipped code, down to its decimal places.

Every f-string and `str.format` template of the code is a line template: its literal text, and for each formatted
field either a fixed number of decimals (`{x:.8f}`) or anything. A log line whose literal text one or more
templates share (the same tag and keys) but whose numbers carry other decimal places than every such template
prints was not written by this code: the run used other code, or the line was edited. A line no template's text
matches says nothing (a logging helper building the line from parts, a tag held in a variable).
"""

from __future__ import annotations

import ast
import re
import string
from dataclasses import dataclass

from harness.submission.logs import LogRun
from harness.verdict import Report
from rules.finding import Evidence, Finding

MIN_LITERAL = 12  # a template needs this many literal characters to identify a line (`val_bpb:` alone does not)
_FIXED = re.compile(r"^[^.]*\.(\d+)f$")  # `.8f`, `>10.4f`


@dataclass(frozen=True)
class Template:
    path: str
    line: int
    loose: re.Pattern  # the literal text, any value in every field
    strict: re.Pattern  # the same, with fixed-decimal fields as numbers of exactly that many decimals
    fixed: bool  # at least one field has fixed decimals (else the strict pattern adds nothing)


def templates(path: str, text: str) -> list[Template]:
    """The line templates of one source file (none when it does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        parts = _parts(node)
        if parts is None or len("".join(p for p in parts if isinstance(p, str)).strip()) < MIN_LITERAL:
            continue
        if isinstance(parts[0], str):
            parts[0] = parts[0].lstrip()
        if isinstance(parts[-1], str):
            parts[-1] = parts[-1].rstrip()
        loose = "".join(re.escape(p) if isinstance(p, str) else r".+?" for p in parts)
        strict = "".join(re.escape(p) if isinstance(p, str) else _number(p) if isinstance(p, int) else r".+?"
                         for p in parts)
        out.append(Template(path, node.lineno, re.compile(loose), re.compile(strict),
                            any(isinstance(p, int) for p in parts)))
    return out


def _number(places: int) -> str:
    """A number printed with PLACES fixed decimals (or nan / inf, which any precision prints as such)."""
    digits = r"-?\d+" + (rf"\.\d{{{places}}}" if places else "")
    return rf"(?:{digits}(?![\d.])|-?nan|-?inf)"


def _parts(node: ast.AST) -> list[str | int | None] | None:
    """Literal text, decimals of a fixed-point field, or None for another field; None when NODE is no template."""
    if isinstance(node, ast.JoinedStr):
        parts: list[str | int | None] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(_decimals(value.format_spec))
        return parts
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str):
        try:
            fields = list(string.Formatter().parse(node.func.value.value))
        except ValueError:
            return None
        parts = []
        for literal, name, spec, _conv in fields:
            parts.append(literal)
            if name is not None:
                found = _FIXED.match(spec or "")
                parts.append(int(found.group(1)) if found and "{" not in (spec or "") else None)
        return parts
    return None


def _decimals(spec: ast.AST | None) -> int | None:
    if isinstance(spec, ast.JoinedStr) and len(spec.values) == 1 and isinstance(spec.values[0], ast.Constant):
        found = _FIXED.match(str(spec.values[0].value))
        return int(found.group(1)) if found else None
    return None


def check_printed_precision(code, logs: list[LogRun], report: Report) -> None:
    """A LOG-CODE-CONSISTENCY error for every run log whose final score line the shipped code's templates name
    but cannot print with those decimal places."""
    units = [u for u in getattr(code, "units", None) or [] if isinstance(getattr(u, "text", None), str)]
    found = [t for u in units for t in templates(u.path, u.text)]
    fixed = [t for t in found if t.fixed]
    if not fixed:
        return
    for run in (r for r in logs if r.is_run_log and r.final is not None and r.final.text):
        line = run.final.text
        named = [t for t in found if t.loose.search(line)]
        if not named or any(t.strict.search(line) for t in named):  # a template without fixed decimals matches
            continue
        shown = named[0]
        report.add(Finding(
            "LOG-CODE-CONSISTENCY", "error",
            f"the final score line `{line[:100]}` has decimal places the shipped code never prints there: "
            f"{shown.path}:{shown.line} formats that line with other precision, so the log was written by other "
            "code or edited", file=run.path, line=run.final.line, seed=run.seed, source="log",
            evidence=tuple(Evidence(t.path, t.line, "the template of that line") for t in named[:3])))

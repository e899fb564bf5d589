"""Training-budget times read from a script's own prints and the run's log lines (TRAIN-DATA-AT-EVAL's evidence).

A print whose formatted values are a loop time, a duration timed around training-data reads after the loop, or a
total, matched against the logged lines, says when those reads ended. `budget` is the rule's reading of the training
loop's clock: its `timer` names and its `scale(expr, flow)` (units per second of a duration, POINT for an instant).
"""

from __future__ import annotations

import ast
import re

from rules.analysis.graph import last_name

CLOCKS = {"perf_counter", "time", "monotonic"}
POINT = "point"  # a clock reading (an instant), as opposed to a duration
_NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_MIN_LITERAL = 8  # literal characters a printed template needs before a log line matching it means much


def logged_end(facts, phase, budget, reads: list[ast.Call], lines: tuple[str, ...]):
    """When the training-data reads end by the logs, read through the script's own prints: (seconds, line of the
    print, the log line), or None. A printed "total" adds the loop's time to a clock started after the loop and
    before a read; "reads" is a duration from such a clock, added to the latest logged "loop" time. Each bounds
    the reads from above, so the tightest print counts; the logs of all runs are merged, so the latest loop end."""
    if not lines or not budget.timer:
        return None
    read_lines = _read_sites(facts, phase, reads)
    found: dict[str, dict[int, tuple[float, str]]] = {"total": {}, "reads": {}, "loop": {}}
    for joined in facts.graph.of_type(ast.JoinedStr):
        call = facts.parents.get(joined)
        if not (isinstance(call, ast.Call) and call.args and call.args[0] is joined
                and isinstance(facts.parents.get(call), ast.Expr)):
            continue
        kinds = [_kind(facts, budget, v.value, call, phase, read_lines) if isinstance(v, ast.FormattedValue)
                 else None for v in joined.values]
        pattern = _pattern(joined, kinds) if any(kinds) else None
        for text in (t for t in lines if pattern is not None and pattern[1] in t):
            match = pattern[0].search(text)
            for group, (kind, scale) in zip(match.groups() if match else (), [k for k in kinds if k]):
                seconds = float(group) / scale
                if seconds >= found[kind].get(call.lineno, (-1.0, ""))[0]:
                    found[kind][call.lineno] = (seconds, text.strip())
    tightest = {kind: min(((v[0], line, v[1]) for line, v in found[kind].items()), default=None)
                for kind in ("total", "reads")}
    loop = max(((v[0], line, v[1]) for line, v in found["loop"].items()), default=None)
    ends = [tightest["total"]] if tightest["total"] else []
    if loop is not None and (tightest["reads"] or tightest["total"]):
        reads_s = tightest["reads"][0] if tightest["reads"] else 0.0
        line = tightest["reads"][1] if tightest["reads"] else loop[1]
        ends.append((loop[0] + reads_s, line, loop[2] + (f" + {tightest['reads'][2]}" if tightest["reads"] else "")))
    return max(ends, default=None)


def _kind(facts, budget, expr: ast.AST, call: ast.Call, phase, read_lines):
    """("loop" | "reads" | "total", units per second) for a value a print formats, or None."""
    flow = facts.flow_of(call)
    if (scale := budget.scale(expr, flow)) in (None, POINT, 0):
        return None
    names = flow.closure(expr) | {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    clocks = [v for n in sorted(names) for v in flow.defs.get(n, ())] + list(ast.walk(expr))
    starts = [v for v in clocks if isinstance(v, ast.Call) and last_name(v.func) in CLOCKS and not v.args
              and phase.is_post_training(v, facts)]  # clock readings after the loop: a duration spans them
    spans = any(start.lineno < site <= call.lineno for start in starts for site in read_lines.get(id(flow), ()))
    timed = bool(names & budget.timer)
    if spans:
        return ("total" if timed else "reads"), scale
    return ("loop", scale) if timed and not starts else None


def _read_sites(facts, phase, reads: list[ast.Call]) -> dict[int, list[int]]:
    """Per function (by id of its flow): the lines where training data is read, directly or through a callee."""
    reading = {id(facts.enclosing_function(r)) for r in reads}
    out: dict[int, list[int]] = {}
    for read in reads:
        out.setdefault(id(facts.flow_of(read)), []).append(read.lineno)
    for stmt in phase.post_statements:
        for node in (n for n in ast.walk(stmt) if isinstance(n, ast.Call)):
            if any(id(c) in reading for c in facts.callees(node)):
                out.setdefault(id(facts.flow_of(node)), []).append(node.lineno)
    return out


def _pattern(joined: ast.JoinedStr, kinds: list) -> tuple[re.Pattern, str] | None:
    """A regular expression for the lines JOINED prints, numbers captured where KINDS marks a timing, and its
    longest literal part (a quick filter); None when too little of the line is literal to recognise it."""
    parts, literals = [], []
    for value, kind in zip(joined.values, kinds):
        if isinstance(value, ast.Constant):
            parts.append(re.escape(str(value.value)))
            literals.append(str(value.value).strip())
        else:
            parts.append(_NUMBER if kind else ".*?")
    if sum(len(text) for text in literals) < _MIN_LITERAL:
        return None
    return re.compile("".join(parts).strip()), max(literals, key=len)

"""Count tables of eval-time n-gram caches: whether a totals table holds the row sums of a count table.

A dense table `counts[row, token]` (the token on an axis of its own, never hashed into the row) read as
`counts[row, y] / totals[row]` is a proper distribution over the vocabulary exactly when `totals[row]` is the sum of
`counts[row, :]`. That holds when totals is computed as that sum, or when every increment of one table is matched, in
the same function, by an increment of the other at the same row and by the same amount (`np.add.at`, `+=`,
`scatter_add_` / `index_add_` / `index_put_(..., accumulate=True)`, flat `row * V + token` indices included).
Smoothing keeps it one when the numerator's added constant k comes with `k * V` (a product with k) in the
denominator.
"""

from __future__ import annotations

import ast

from rules.analysis.dataflow import walk_shallow
from rules.analysis.graph import last_name

_ADDERS = {"scatter_add_", "index_add_", "scatter_add", "index_add"}
_FLAT = {"reshape", "view", "flatten", "ravel"}
_INITS = {"zeros", "zeros_like", "empty", "empty_like", "full", "new_zeros"}


def row_sums(tree: ast.Module, table: str, totals: str) -> bool:
    """TOTALS (an expression's text) is shown to hold the row sums of TABLE."""
    if _sum_of(ast.parse(totals, mode="eval").body, table):
        return True
    increments: dict[int, list[tuple[str, str, str, int]]] = {}  # function -> (table, row, amount, line)
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
            continue
        nodes = list(walk_shallow(func))
        single = _single_assignments(nodes)
        for node in nodes:
            if isinstance(node, ast.Assign) and any(ast.unparse(t) == totals for t in node.targets):
                if _sum_of(node.value, table):
                    return True
                if not (isinstance(node.value, ast.Call) and last_name(node.value.func) in _INITS):
                    return False  # totals set to something else somewhere
            found = _increment(node, single)
            if found is not None and found[0] in (table, totals):
                increments.setdefault(id(func), []).append(found)
    paired = False
    for found in increments.values():
        rows = {t: sorted((r, a) for name, r, a, _ in found if name == t) for t in (table, totals)}
        if rows[table] != rows[totals]:
            return False  # one table is incremented where the other is not, or at another row or amount
        paired = paired or bool(rows[table])
    return paired


def smoothing_normalised(numerator: ast.AST, denominator: ast.AST) -> bool:
    """A constant k added to the count comes with a product holding k in the denominator (add-k over V tokens)."""
    added = [c.value for c in _added_constants(numerator)]
    if not added:
        return True
    products = [n for n in ast.walk(denominator) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)]
    return all(any(isinstance(c, ast.Constant) and c.value == k for p in products for c in (p.left, p.right))
               for k in added)


def _added_constants(expr: ast.AST) -> list[ast.Constant]:
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return [s for s in (expr.left, expr.right) if isinstance(s, ast.Constant) and isinstance(s.value, (int, float))] \
            + _added_constants(expr.left) + _added_constants(expr.right)
    return []


def _sum_of(value: ast.AST, table: str) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "sum" \
        and ast.unparse(value.func.value) == table


def _table(expr: ast.AST) -> str:
    """`t.reshape(-1)` and `t.view(-1)` write into T."""
    while isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in _FLAT:
        expr = expr.func.value
    return ast.unparse(expr)


def _single_assignments(nodes: list[ast.AST]) -> dict[str, ast.AST]:
    """Names assigned exactly once among NODES, with their value."""
    values: dict[str, list[ast.AST]] = {}
    for node in nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)) and isinstance(node.target, ast.Name):
            values.setdefault(node.target.id, []).extend([node, node])
    return {k: v[0] for k, v in values.items() if len(v) == 1}


def _row(index: ast.AST, single: dict[str, ast.AST]) -> str:
    """The row an index writes: the first of a tuple, `r` of a flat `r * V + token`, or the index itself (names
    assigned once followed to their value)."""
    index = _resolve(index, single)
    if isinstance(index, ast.Tuple) and index.elts:
        index = index.elts[0]
    elif isinstance(index, ast.BinOp) and isinstance(index.op, ast.Add):
        index = next((side.left for side in (index.left, index.right)
                      if isinstance(side, ast.BinOp) and isinstance(side.op, ast.Mult)), index)
    return ast.unparse(_resolve(index, single))


def _resolve(expr: ast.AST, single: dict[str, ast.AST]) -> ast.AST:
    for _ in range(4):
        if not (isinstance(expr, ast.Name) and expr.id in single):
            break
        expr = single[expr.id]
    return expr


def _increment(node: ast.AST, single: dict[str, ast.AST]) -> tuple[str, str, str, int] | None:
    """(table, row, amount, line) of an additive write into a table."""
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Subscript):
        return _table(node.target.value), _row(node.target.slice, single), ast.unparse(node.value), node.lineno
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    attr, args = node.func.attr, node.args
    if attr in _ADDERS and len(args) >= 3:
        return _table(node.func.value), _row(args[1], single), ast.unparse(args[2]), node.lineno
    if attr == "at" and ast.unparse(node.func.value).endswith("add") and len(args) >= 2:
        return _table(args[0]), _row(args[1], single), ast.unparse(args[2]) if len(args) > 2 else "1", node.lineno
    if attr == "index_put_" and len(args) >= 2 and any(k.arg == "accumulate" for k in node.keywords):
        return _table(node.func.value), _row(args[0], single), ast.unparse(args[1]), node.lineno
    return None

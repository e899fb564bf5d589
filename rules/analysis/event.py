"""The Event record of the shared facts: something a causality rule cares about, placed in one function's body.

Its own module so that rules.analysis.facts (which computes events) and rules.analysis.causality (which reads them) both import
it from below, without importing each other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Something causality rules care about, placed in one function's body (inlined from callees at the call)."""

    kind: str  # "backward" | "step" | "mutate" | "accum"
    pos: tuple  # sort key in the function's execution order: (line, col, ...callee positions)
    anchor: ast.AST  # the node in THIS function (the event itself, or the call that leads to it)
    node: ast.AST  # the node where it really happens (maybe in a callee)
    labels: frozenset  # taint labels of the data involved, in this function's terms
    chain: tuple = ()  # call nodes from this function down to the event
    count_only: bool = False  # an accumulation of counts (tokens, bytes), not of a score

    @property
    def line(self) -> int:
        return self.node.lineno

    @property
    def anchor_line(self) -> int:
        return self.anchor.lineno

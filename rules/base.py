"""The base class every static rule derives from, and the data types rules exchange with the engine.

How to write a rule
===================

One rule per module in the ``rules`` package; the engine finds every ``Rule`` subclass by walking the package
(no registry to edit). A rule looks like this::

    class NoValWarmup(Rule):
        '''Flags a compile warm-up that runs backward() on validation tokens.

        Why: the PR #1530 thread (community dispute, tolerated): adapting before the reported pass looks like #677.

        Instead: warm up with torch.randint tokens and log "random tokens, no val data".
        '''

        ID = "TTT-WARMUP-ON-VAL"          # a key of rules.catalogue.RULES
        CODE = "PG011"                    # short stable code, unique across rules
        MESSAGE = "Compile warm-up trains on validation tokens."
        VALID = [Valid("x = torch.randint(0, 10, (4,))\\nloss(x).backward()\\n")]
        INVALID = [Invalid("val_tokens = load_validation_tokens(p, 8)\\nloss(val_tokens).backward()\\n",
                           expected_line=2)]

        def visit_Call(self, node: ast.Call) -> None:
            if isinstance(node.func, ast.Attribute) and node.func.attr == "backward" \
                    and self.facts.is_val(node.func, self.facts.function_of(node)):
                self.report(node, evidence=[self.facts.val_evidence(node.func)])

* The docstring has three paragraphs: what it flags; why it is illegal, citing the ruling; what to write instead.
  ``rules/docs.py`` renders it, with MESSAGE and the first VALID/INVALID cases, into docs/rules.md.
* The tree is the stdlib ``ast`` tree of one Python unit (line numbers on every node). The engine walks it ONCE
  and calls ``visit_<NodeType>(node)`` (before children) and ``leave_<NodeType>(node)`` (after children) on every
  rule that defines them. Rules that reason about the whole script implement ``finish()``, called after the walk.
* Shared analysis lives in ``self.facts`` (``rules.analysis.facts.Facts``), computed lazily once per unit and shared by all
  rules: validation-data taint across functions, the call graph and the entry point's call order, per-loop facts
  (backward, optimizer step, parameter mutation, score accumulation, last-chunk guards), gradient contexts, and
  environment-flag guards with their defaults. Read it; never recompute it in a rule. For speed (``check`` has a
  0.6 s budget), iterate ``func.nodes`` or ``self.facts.graph.of_type(...)`` / ``graph.subtree(node)`` rather than
  ``ast.walk`` over a whole function or the tree, and cache per-node answers you ask for more than once.
* ``self.report(node_or_line, message=None, *, severity=None, evidence=())`` records a ``rules.finding.Finding``
  on the unit's file (decoded code keeps the shipped file name and says "decoded" in its message). ``severity``
  defaults to the catalogue's default for ``ID``; ``evidence`` is an iterable of ``(line, note)`` pairs naming
  where the validation data came from, where the update happens, where the same tokens are scored.
  ``self.gated_severity(node, severity)`` lowers an error to a warning when the code is only reachable behind an
  environment flag that is off by default and that the logs do not show enabled (illegal code is still reported).
* VALID cases must stay silent; INVALID cases must produce at least one violation of this rule (on
  ``expected_line`` / with ``expected_severity`` when given). tests/rules/test_rules.py runs all of them, and
  tests/rules/test_mutation.py re-runs them after renaming locals and reformatting.
* Suppression comments in submissions are never honoured; reviewers use the harness allow-list instead.
* ``rules/`` must not import torch, harness/, reference/ or click.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Iterable, Sequence

from rules.analysis.facts import Facts
from rules.catalogue import RULES
from rules.finding import Evidence, Finding

EvidenceItem = tuple[int, str]  # (line, note): a place in the unit the rule reads, and what happens there
DECODED_NOTE = " (in the decoded code of the self-extracting script)"


@dataclass(frozen=True)
class LogHints:
    """What the run logs say, as far as static rules care: tags seen and hyperparameter values printed."""

    tags: frozenset[str] = frozenset()  # feature tags or log-line prefixes seen, e.g. "prequant_ttt", "ttt_lora"
    hyperparameters: dict[str, str] = field(default_factory=dict)  # name -> printed value, any case
    lines: tuple[str, ...] = ()  # the runs' output lines (not their source dumps), for `printed`
    claimed: tuple[str, ...] = ()  # the output lines the claimed val_bpb was read from (one per log the claim used)

    def printed(self, pattern: str) -> bool:
        """True when an output line of the runs matches PATTERN (a template of a line the code prints)."""
        return _search(pattern, self.lines)

    def flag_value(self, name: str) -> str | None:
        """The logged value of a hyperparameter or env flag, matched case-insensitively (TTT_ENABLED ~ ttt_enabled)."""
        wanted = name.lower()
        for key, value in self.hyperparameters.items():
            if key.lower() == wanted:
                return str(value)
        # a feature tag in the logs shows the guarded path ran: prequant_ttt_enabled ~ "prequant_ttt:done"
        stem = wanted.removesuffix("_enabled").removeprefix("enable_").removeprefix("use_")
        if len(stem) >= 3 and self.saw(stem):
            return "1"
        return None

    def saw(self, tag: str) -> bool:
        """True when a log tag (or a tag starting with it) was seen."""
        tag = tag.lower()
        return any(t.lower() == tag or t.lower().startswith(tag) for t in self.tags)


@lru_cache(maxsize=4096)
def _search(pattern: str, lines: tuple[str, ...]) -> bool:
    compiled = re.compile(pattern)
    return any(compiled.search(line) for line in lines)


@dataclass(frozen=True)
class Valid:
    """A snippet the rule must not flag (include the near-misses that a naive rule would flag)."""

    code: str
    name: str = ""
    log_hints: LogHints = LogHints()


@dataclass(frozen=True)
class Invalid:
    """A snippet the rule must flag, optionally on a given line (1-based, in ``code``) and with a given severity."""

    code: str
    expected_line: int | None = None
    expected_severity: str | None = None
    name: str = ""
    log_hints: LogHints = LogHints()


@dataclass
class RuleContext:
    """Everything a rule sees about one Python unit."""

    path: str
    text: str
    tree: ast.Module
    facts: Facts
    log_hints: LogHints
    origin: str = "shipped"  # shipped / decoded / exec-open / import (harness.submission.code.CodeUnit.origin)


class Rule:
    """Base class for static rules; see the module docstring for how to write one."""

    ID: ClassVar[str] = ""
    CODE: ClassVar[str] = ""
    MESSAGE: ClassVar[str] = ""
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []

    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.findings: list[Finding] = []

    @property
    def facts(self) -> Facts:
        return self.context.facts

    @property
    def log_hints(self) -> LogHints:
        return self.context.log_hints

    @classmethod
    def default_severity(cls) -> str:
        return RULES[cls.ID].severity

    def report(
        self,
        node_or_line: ast.AST | int | None,
        message: str | None = None,
        *,
        severity: str | None = None,
        evidence: Iterable[EvidenceItem | None] = (),
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record a finding at a node (its first line) or a line number; None items in evidence are dropped.

        Evidence lines are the unit's own; in decoded code (a self-extracting script) they are decoded lines, and
        the message and every evidence note say so.
        """
        if isinstance(node_or_line, ast.AST):
            line = getattr(node_or_line, "lineno", None)
        else:
            line = node_or_line
        items = sorted({e for e in evidence if e is not None}, key=lambda e: (e[0] or 0, e[1]))
        path, origin = self.context.path, self.context.origin
        decoded = origin == "decoded"
        self.findings.append(Finding(
            rule=self.ID,
            severity=severity or self.default_severity(),
            message=(message or self.MESSAGE) + (DECODED_NOTE if decoded else ""),
            file=path,
            line=line,
            evidence=tuple(Evidence(path, ev_line or None, note + (" (decoded line)" if decoded else ""))
                           for ev_line, note in items),
            data={**(data or {}), "code": self.CODE, "origin": origin},
            source="static",
        ))

    def gated_severity(
        self, node: ast.AST | Sequence[ast.AST], severity: str | None = None
    ) -> tuple[str, list[EvidenceItem]]:
        """Severity for a hit at NODE (or along a call path of nodes) given the env-flag guards around it.

        Returns the severity and evidence naming those guards.

        An error stays an error when every guard is on by default or the logs show the flag enabled; it becomes a
        warning when some guard is off by default and the logs do not show it on (the code is still reported).
        """
        severity = severity or self.default_severity()
        evidence: list[EvidenceItem] = []
        lowered = False
        nodes = [node] if isinstance(node, ast.AST) else list(node)
        seen: set[int] = set()
        for guard in (g for n in nodes for g in self.facts.flag_guards(n)):
            if guard.line in seen:
                continue
            seen.add(guard.line)
            enabled, source = guard.enabled(self.log_hints.flag_value, self.log_hints.printed)
            state = {True: "on", False: "off", None: "unknown"}[enabled]
            evidence.append((guard.line, f"guarded by {guard.describe()} ({state} by {source})"))
            if enabled is False:
                lowered = True
        if lowered and severity == "error":
            severity = "warning"
        return severity, evidence

    def finish(self) -> None:
        """Called once after the walk; rules that reason about the whole script report from here."""


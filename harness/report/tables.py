"""Tables shared by the text and Markdown renderers: the Table record, cell formatting, the headline counts,
the facts as tables and the significance (statistics) tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.check.significance import NatsTest, PolicyResult, SidePair, Significance
from harness.check.stats import Summary
from harness.report.contract import json_safe
from harness.verdict import Report
from rules.finding import SEVERITIES

SIGNIFICANCE_KEY = "significance"


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells, shared by the text and Markdown renderers."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: tuple[str, ...] = ()  # printed under the table
    primary: bool = True  # False: supporting detail (collapsed in the Markdown comment)


def cell(value: Any) -> str:
    """One value as a table cell: 8 significant digits for floats, thousands separators for large ints."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, (list, tuple, dict, set)) and not value:
        return "—"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(json_safe(value), sort_keys=True)
    return str(value)


def clip(text: object, limit: int | None) -> str:
    """TEXT on one line (whitespace collapsed), cut at LIMIT characters with an ellipsis (no cut when None)."""
    line = " ".join(str(text).split())
    return line[: limit - 1].rstrip() + "…" if limit and len(line) > limit else line


def where(file: str | None, line: int | None) -> str:
    if file is None:
        return "—"
    return f"{file}:{line}" if line is not None else file


def _counts(report: Report) -> dict[str, int]:
    return {s: sum(f.severity == s for f in report.findings) for s in SEVERITIES}


def headline_counts(report: Report) -> str:
    c = _counts(report)
    return (f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info; {len(report.checked)} rule(s) "
            f"checked, {len(report.not_checked)} not checked")


# --- facts as tables ----------------------------------------------------------------------------------------------

def _is_table(value: Any) -> bool:
    """A list of dicts or a dict of dicts: shapes that read best as their own table."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, dict) for v in value)
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def _generic_tables(title: str, value: Any, primary: bool, depth: int = 0) -> list[Table]:
    """A fact as tables: list of dicts, dict of dicts, or a dict of scalars whose nested tables follow it."""
    if isinstance(value, list) and _is_table(value):
        cols = _columns(value)
        return [Table(title, cols, [[cell(r.get(c)) for c in cols] for r in value], primary=primary)]
    if isinstance(value, dict) and _is_table(value):
        cols = _columns(list(value.values()))
        return [Table(title, ["", *cols], [[str(k), *[cell(r.get(c)) for c in cols]] for k, r in value.items()],
                      primary=primary)]
    if isinstance(value, dict) and value:
        nested = {k: v for k, v in value.items() if depth < 2 and _is_table(v)}
        flat = [[str(k), cell(v)] for k, v in value.items() if k not in nested]
        tables = [Table(title, ["", "value"], flat, primary=primary)] if flat else []
        for key, sub in nested.items():
            tables += _generic_tables(f"{title}: {key}", sub, primary, depth + 1)
        return tables
    if isinstance(value, list) and value:
        return [Table(title, ["value"], [[cell(v)] for v in value], primary=primary)]
    if value not in (None, {}, [], ""):
        return [Table(title, ["value"], [[cell(value)]], primary=primary)]
    return []


def _fact_order(key: str) -> tuple[int, str]:
    """Per-seed tables first, then sizes, then anything else (alphabetically)."""
    k = key.lower()
    return (0 if "seed" in k else 1 if "size" in k or "byte" in k else 2, k)


def fact_tables(facts: dict[str, Any]) -> list[Table]:
    """Every fact except the statistics, in reading order: per-seed and sizes (primary), then the others."""
    tables = []
    for key in sorted((k for k in facts if k != SIGNIFICANCE_KEY), key=_fact_order):
        tables += _generic_tables(key.replace("_", " "), facts[key], primary=_fact_order(key)[0] < 2)
    return tables


def _mean_sd(summary: Summary | None) -> str:
    if summary is None:
        return "—"
    sd = "sd ?" if summary.sd is None else f"± {summary.sd:.5f}"
    return f"{summary.mean:.5f} {sd} (n={summary.n})"


def _result_word(passes: bool | None) -> str:
    return "not testable" if passes is None else ("pass" if passes else "FAIL")


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _stat_row(policy: str, unit: str, test: PolicyResult | NatsTest, margin: str, alpha: float,
              summaries: SidePair | None, needed: dict[str, Any] | None) -> list[str]:
    """One row of the statistics table: one policy's test in one unit."""
    seeds = "—" if needed is None else f"{cell(needed.get('power'))} / {cell(needed.get('observed'))}"
    return [policy, unit, test.method or "—", margin, f"< {alpha:g}",
            _mean_sd(summaries.candidate if summaries else None), _mean_sd(summaries.reference if summaries else None),
            _num(test.t, ".3f"), _num(test.df, ".2f"), _num(test.p, ".4g"), _result_word(test.passes), seeds]


def significance_tables(sig: Significance) -> list[Table]:
    """The statistics table (both policies, bpb and nats) and the per-seed values both sides were tested on."""
    rows = []
    for name, res in sig.policies.items():
        label = name + (" (selected)" if name == sig.policy else "")
        nats_margin = f"{res.delta_nats:g} nats" if res.delta_nats else "none"
        bpb_margin = f"{nats_margin} = {_num(res.delta_bpb, '.5f')} bpb" if res.delta_nats else "none"
        rows.append(_stat_row(label, "bpb", res, bpb_margin, res.alpha, sig.summary_bpb, res.seeds_needed or {}))
        if res.nats_test:
            unit = "nats" if res.nats_test.comparable else "nats (not comparable)"
            rows.append(_stat_row(label, unit, res.nats_test, nats_margin, res.alpha, sig.summary_nats, None))
    ratio_text = "unknown" if sig.bpb_per_nat is None else f"{sig.bpb_per_nat:.4f} bpb per nat"
    stats_table = Table(f"statistics (one-sided, H0: candidate >= reference - margin; margin conversion "
                        f"{ratio_text}, {sig.ratio_source})",
                        ["policy", "unit", "test", "margin", "alpha", "candidate mean", "reference mean", "t", "df",
                         "p", "result", "seeds needed (80% power / observed effect)"], rows)
    seed_rows = [[side, str(v.seed or "—"), _num(v.val_loss, ".8f"), _num(v.val_bpb, ".8f"), sample.source]
                 for side, sample in (("candidate", sig.candidate), ("reference", sig.reference))
                 for v in sample.values]
    seeds_table = Table("per-seed values tested", ["side", "seed", "val_loss (nats)", "val_bpb", "source"],
                        seed_rows, notes=tuple(_significance_notes(sig)))
    return [stats_table, seeds_table]


def _significance_notes(sig: Significance) -> list[str]:
    notes = list(sig.notes)
    for side, sample in (("candidate", sig.candidate), ("reference", sig.reference)):
        notes += [f"{side}: {n}" for n in sample.notes]
    for name, res in sig.policies.items():
        if res.note:
            notes.append(f"{name}: {res.note}")
    return notes


def all_tables(report: Report) -> list[Table]:
    """Statistics tables first (when present), then per-seed, sizes and the other facts."""
    sig = report.facts.get(SIGNIFICANCE_KEY)
    stats_tables = significance_tables(sig) if isinstance(sig, Significance) else []
    return stats_tables + fact_tables(report.all_facts())

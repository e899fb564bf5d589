"""`rules`: every rulebook rule with how this tool judges it (static rule, log/artifact check, runtime probe).

Generated from the rule classes and the check stages, never written twice: the rule documentation in docs/rules.md
comes from the same sources.
"""

from __future__ import annotations

import json

from rules.catalogue import RULES


def _static_rules() -> dict[str, list[str]]:
    """Rule ID -> names of the static rule classes that implement it."""
    try:
        from rules.engine import discover_rules
    except ImportError:
        return {}
    out: dict[str, list[str]] = {}
    for cls in discover_rules():
        out.setdefault(cls.ID, []).append(cls.__name__)
    return out


def _stage_rules() -> dict[str, list[str]]:
    from harness.check import STAGE_RULES

    out: dict[str, list[str]] = {}
    for stage, rule_ids in STAGE_RULES.items():
        for rule_id in rule_ids:
            out.setdefault(rule_id, []).append(stage)
    return out


def _probe_rules() -> dict[str, list[str]]:
    try:
        from harness.probe import PROBE_RULES
    except ImportError:
        return {}
    out: dict[str, list[str]] = {}
    for probe, rule_ids in PROBE_RULES.items():
        for rule_id in rule_ids:
            out.setdefault(rule_id, []).append(probe)
    return out


def rule_coverage() -> list[dict]:
    """One row per rulebook ID: the rulebook facts plus what checks it here (empty lists mean not checked)."""
    static, stages, probes = _static_rules(), _stage_rules(), _probe_rules()
    return [{
        "id": spec.id, "family": spec.family, "severity": spec.severity, "strength": spec.strength,
        "summary": spec.summary, "source": spec.source,
        "static_rules": static.get(spec.id, []), "log_checks": stages.get(spec.id, []),
        "runtime_probes": probes.get(spec.id, []),
    } for spec in RULES.values()]


def _how(row: dict) -> str:
    parts = []
    if row["static_rules"]:
        parts.append("code: " + ", ".join(row["static_rules"]))
    if row["log_checks"]:
        parts.append("logs/artifact: " + ", ".join(row["log_checks"]))
    if row["runtime_probes"]:
        parts.append("runtime: " + ", ".join(row["runtime_probes"]))
    return "; ".join(parts) or "NOT CHECKED"


def render_rules(fmt: str = "text") -> str:
    rows = rule_coverage()
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "markdown":
        lines = ["| ID | severity | summary | ruling | checked by |", "|---|---|---|---|---|"]
        lines += [f"| `{r['id']}` | {r['severity']} | {r['summary']} | {r['source']} | {_how(r)} |" for r in rows]
        return "\n".join(lines)
    width = max(len(r["id"]) for r in rows)
    out = []
    for r in rows:
        out.append(f"{r['id']:<{width}}  {r['severity']:<7}  {r['summary']}")
        out.append(f"{'':<{width}}           ruling: {r['source']}")
        out.append(f"{'':<{width}}           checked by: {_how(r)}")
    return "\n".join(out)

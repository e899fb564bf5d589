"""Evidence lines for causality findings: where validation data came from, where it is updated, where scored."""

from __future__ import annotations

from rules.base import EvidenceItem


def describe_path(facts, site, path) -> tuple[list[EvidenceItem], int | None]:
    """Evidence for one call path to an adaptation site, and the line where validation data is scored later."""
    evidence: list[EvidenceItem] = []
    source = facts.evidence_of_labels(path.vals)
    if source and source[0]:
        evidence.append(source)
    evidence.append((site.backward.line, "gradient of a loss computed from validation data"))
    if site.step is not None:
        evidence.append((site.step.line, "optimizer step / parameter update"))
    for func, node in path.frames[1:]:
        evidence.append((node.lineno, f"reached through this call in `{func.qualname}`"))
    later = None
    if path.later_score is not None:
        func, event = path.later_score
        later = event.anchor_line
        note = "validation data scored afterwards"
        if event.line != event.anchor_line:
            note += f" (accumulated at line {event.line})"
        evidence.append((later, note))
    return evidence, later

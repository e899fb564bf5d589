"""Findings about logs that are not behind the claimed score are warnings, not errors.

A folder often ships more logs than the claim rests on: a tuning run with other settings, a comparison run of the
baseline script, an extra run on other hardware. When the claimed val_bpb is explained by a proper subset of the
logs (harness.check.claims: the mean of a subset, one log's value, or a non-final line of some of the logs), a size, budget, metric or log-code finding about a log outside that
subset does not concern the submitted runs: it stays visible, as a warning that says so. When the claim rests on
every log, nothing changes; when no log explains it (an unbacked claim), the per-run budget findings of the
logs are warnings too: those runs are not shown to be the claimed one.
"""

from __future__ import annotations

from harness.check.seeds import configuration
from harness.verdict import Report

# Rules whose log-level findings concern one run's own figures.
PER_RUN_RULES = frozenset({"ARTIFACT-CAP-16MB", "LOG-CODE-CONSISTENCY", "TRAIN-TIME-600", "EVAL-TIME-600", "HARDWARE",
                           "FULL-VAL-TOKEN-COUNT", "BPB-BYTE-LUT", "TOKENIZER-CHANGE-PROOF"})

BUDGET_RULES = frozenset({"TRAIN-TIME-600", "EVAL-TIME-600", "HARDWARE"})

MIN_SETTINGS = 5  # a dump this small (or none) cannot tell a side run from another seed

# How the claim relates to the logs when it rests on some of them (harness.check.claims.Comparison.kind).
SCOPED_KINDS = frozenset({"subset", "single", "non_final", "unparsed"})


def scope_to_claim(comparisons: dict | None, report: Report, logs_parsed: list | None = None) -> None:
    """Turn errors about logs outside the claim's subset into warnings that name the logs behind the claim. A log
    that prints the same configuration as a log behind the claim is another seed of the submitted run, not a side
    run: its findings stand."""
    bpb = (comparisons or {}).get("val_bpb")
    if bpb is not None and bpb.unbacked:  # no log shows the claim: the logs' runs are not shown to be the claimed one
        report.downgrade(lambda f: f.rule in BUDGET_RULES and f.source == "log",
                         " (no log shows the claimed val_bpb, so this run is not shown to be the claimed one; "
                         "SIGNIFICANCE reports the unsupported claim)")
        return
    if bpb is None or bpb.kind not in SCOPED_KINDS or not bpb.logs_used:
        return
    behind = set(bpb.logs_used)
    logs = {row.get("log") for row in report.facts.get("seeds", [])} - {None}
    if not logs - behind:
        return
    names = ", ".join(sorted(behind)[:4]) + (" …" if len(behind) > 4 else "")
    by_path = {getattr(r, "path", None): r for r in logs_parsed or []}
    # Only a log that prints its settings (a hyperparameter dump) can show it is another seed of the claimed run.
    dumped = {p for p, r in by_path.items() if len(getattr(r, "dumped_settings", None) or ()) >= MIN_SETTINGS}
    submitted = [configuration(by_path[p]) for p in behind & dumped]
    same_run = {p for p in (logs - behind) & dumped if configuration(by_path[p]) in submitted}
    report.downgrade(lambda f: f.rule in PER_RUN_RULES and f.source in ("log", "artifact") and f.file in logs
                     and f.file not in behind and f.file not in same_run,
                     f" (this log is not among those behind the claimed val_bpb: {names})")

"""Log evidence for TRAIN-DATA-AT-EVAL: the logged loop end plus the logged reads decide whether training data read
after the loop fits in the 600 s training budget.

The static rule flags training data read after the training loop when the code leaves no time for it (the loop's
stop condition compares its elapsed time against 600 s, or is not visible) and the script's own prints do not show
the reads inside 600 s. The parsed logs can still show it: a run's effective budget is where its loop stopped (one
launched with `MAX_WALLCLOCK_SECONDS=560` reserved 40 s), and `GPTQ:collected ... in Ys` lines time the reads.
Per run, loop end + logged reads within 600 s: the reads fit, and the static error becomes info citing those log
lines; over by at most HESSIAN_MARGIN_S (the #1855 margin, merged): a warning; more: the error stands, and
TRAIN-TIME-600 reports the numbers. A run whose reads are not timed needs a reserve of RESERVE_MIN_S (600 s minus
the loop end) for a warning; a run with no loop time logged leaves the error standing. These margins are for code
that reserves time for its reads (rulebook: #1855 merged with a reserve that fell short); where the static rule
found no reserve (#593), reads the logs show ending past 600 s stay an error.
"""

from __future__ import annotations

from dataclasses import replace

from harness.challenge import TRAIN_BUDGET_S
from harness.check.budgets import HESSIAN_MARGIN_S
from harness.submission.manifest import claimed_track, is_off_record
from harness.verdict import Report
from rules.finding import Evidence

RESERVE_MIN_S = 20.0  # untimed reads: the loop must end this long before the budget (Hessians took 1-13 s in the logs)


def train_reads_within_reserve(logs: list, report: Report) -> None:
    """Re-judge static TRAIN-DATA-AT-EVAL errors by every run log's loop end and logged read time."""
    runs = [r for r in logs if getattr(r, "is_run_log", False) and r.final is not None]
    if not runs or any(r.train_time_ms is None for r in runs):
        return
    severity, evidence, timed, untimed = "info", [], [], []
    for run in runs:
        loop_s = run.train_time_ms / 1000.0
        if run.hessian_time_s is not None:
            end = loop_s + run.hessian_time_s
            if end - TRAIN_BUDGET_S > HESSIAN_MARGIN_S:
                return  # the logged reads end well past the budget: the error stands
            severity = "warning" if end > TRAIN_BUDGET_S else severity
            timed.append(end)
            evidence.append(Evidence(run.path, run.line_of.get("gptq_collected"),
                                     f"loop ends at {loop_s:.1f} s + reads logged {run.hessian_time_s:.1f} s = "
                                     f"{end:.1f} s"))
        else:
            if TRAIN_BUDGET_S - loop_s < RESERVE_MIN_S:
                return  # the loop ran (nearly) to the cap and the reads are not timed: the error stands
            severity = "warning"
            untimed.append(loop_s)
            evidence.append(Evidence(run.path, run.line_of.get("stopping_early"),
                                     f"loop ends at {loop_s:.1f} s, leaving {TRAIN_BUDGET_S - loop_s:.0f} s; "
                                     f"the reads are not timed"))
    parts = []
    if timed:
        inside = "inside" if max(timed) <= TRAIN_BUDGET_S else f"at most {HESSIAN_MARGIN_S:g} s past"
        parts.append(f"loop plus logged reads end by {max(timed):.1f} s, {inside} the {TRAIN_BUDGET_S:.0f} s "
                     f"training budget")
    if untimed:
        parts.append(f"{'the other' if timed else 'every'} training loop ends by {max(untimed):.1f} s, leaving at "
                     f"least {TRAIN_BUDGET_S - max(untimed):.0f} s for reads the logs do not time")
    note = f" (the logs show: {'; '.join(parts)})"
    over = bool(timed) and max(timed) > TRAIN_BUDGET_S

    def rejudged(f):
        # Code that reserves no time (the loop runs to the cap, #593) gets no margin: reads the logs show ending
        # past 600 s stay an error.
        if over and not (f.data or {}).get("reserved", True):
            return f
        return replace(f, severity=severity, message=f.message + note, evidence=(*f.evidence, *evidence))

    report.findings = [
        rejudged(f) if f.rule == "TRAIN-DATA-AT-EVAL" and f.source == "static" and f.severity == "error" else f
        for f in report.findings
    ]


def off_record_training_reads(claims, report: Report) -> None:
    """Off the record track there is no 600 s training budget: training data read after the loop (calibration before
    the artifact is written) is more training, so the static error is a warning that says so. Reads at evaluation
    still break the no-training-data-at-eval rule; the static rule cannot always tell the two apart, so it stays
    visible."""
    track = claimed_track(claims)
    if not is_off_record(track):
        return
    report.downgrade(lambda f: f.rule == "TRAIN-DATA-AT-EVAL" and f.source == "static",
                     f" (track {track}: no 600 s training budget applies; check that the reads happen before the "
                     "artifact is written, not during evaluation)")

"""Log evidence for TRAIN-DATA-AT-EVAL: a run that stopped its training loop well before 600 s left a reserve.

The static rule flags training data read after the training loop when the code subtracts no reserve from the
wall-clock cap. The logs can show the reserve the code does not: the run was launched with a lower cap (say
`MAX_WALLCLOCK_SECONDS=560`) and every logged loop ended at least RESERVE_MIN_S before 600 s. Then the
post-loop reads (GPTQ Hessians, a table filled from training shards) had that time; where the logs also time them,
TRAIN-TIME-600 judges loop + reads exactly. The static error becomes a warning that cites the logged loop times.
With no loop time logged, or a loop that ran to the cap, the error stands.
"""

from __future__ import annotations

from harness.challenge import TRAIN_BUDGET_S
from harness.verdict import Report

RESERVE_MIN_S = 20.0  # the loop must end this long before the budget (Hessian collection took 1-10 s in the logs)


def train_reads_within_reserve(logs: list, report: Report) -> None:
    """Downgrade static TRAIN-DATA-AT-EVAL errors when every run log's loop left at least RESERVE_MIN_S."""
    runs = [r for r in logs if getattr(r, "is_run_log", False) and r.final is not None]
    loops = [r.train_time_ms / 1000.0 for r in runs if r.train_time_ms is not None]
    if not runs or len(loops) < len(runs) or max(loops) > TRAIN_BUDGET_S - RESERVE_MIN_S:
        return
    timed = [r.hessian_time_s for r in runs if r.hessian_time_s is not None]
    if timed and max(l + h for l, h in zip(loops, timed)) > TRAIN_BUDGET_S:
        return  # the logs time the reads and they do not fit: TRAIN-TIME-600 says so
    note = (f" (the logs show every training loop ending by {max(loops):.1f} s, leaving at least "
            f"{TRAIN_BUDGET_S - max(loops):.0f} s of the {TRAIN_BUDGET_S:.0f} s budget for these reads)")
    report.downgrade(lambda f: f.rule == "TRAIN-DATA-AT-EVAL" and f.source == "static", note)

"""Seed hygiene from the logs: unreported runs, repeated seeds, and seeds from different configurations.

SEED-BRUTEFORCE (README FAQ: brute-forcing seeds is not allowed) cannot be proven from a folder, so everything here
is a warning with the numbers. Mixed configurations across seeds (cocohearts on #2124: a third seed from another
configuration is not a row) are reported under SIGNIFICANCE, because they invalidate the test, not the code.
"""

from __future__ import annotations

import re
from collections import Counter

from harness.verdict import Report
from rules.finding import Finding

# Hyperparameters that legitimately differ between the seed runs of one configuration.
PER_RUN_KEYS = {"seed", "run_id", "logfile", "log_path", "out_dir", "output_dir", "artifact_path", "model_path"}
# Keys a log line reports measurements under (losses, scores, times, throughput, memory): the `key:value` pairs of
# step, score and throughput lines are read like a settings echo, but they differ between any two runs of one
# configuration, so they never show a configuration change.
MEASURED_KEY = re.compile(r"loss|bpb|time|_avg|per_s|tflops|mfu|rss|mib|memory|_ms$|tok_s|throughput|elapsed"
                          r"|^steps?$", re.IGNORECASE)  # the step a wall-clock-capped run stopped at


def _scored(logs: list) -> list:
    return [log for log in logs if getattr(log, "final", None) is not None]


def configuration(log) -> dict[str, str]:
    """The settings a run log prints (its hyperparameter dump and settings echoes), without what names one run or
    measures it: two runs with equal ones are seeds of one configuration."""
    values = getattr(log, "hyperparameters", None) or {}
    return {k: str(v) for k, v in values.items() if k not in PER_RUN_KEYS and not MEASURED_KEY.search(k)}


def _config_differences(logs: list) -> dict[str, set[str]]:
    dumps = [configuration(log) for log in logs]
    dumps = [d for d in dumps if d]
    if len(dumps) < 2:
        return {}
    keys = set().union(*(d.keys() for d in dumps))
    return {k: {str(d.get(k)) for d in dumps} for k in sorted(keys) if len({str(d.get(k)) for d in dumps}) > 1}


def check_seeds(sub, code, claims, logs: list, report: Report) -> None:
    """Warn about repeated seeds, logs of runs the claims leave out, and configurations that differ per seed."""
    scored = _scored(logs)
    if not scored:
        report.skip("SEED-BRUTEFORCE", "no log with a final score")
        return
    report.mark_checked("SEED-BRUTEFORCE")
    seeds = [str(log.seed) for log in scored if getattr(log, "seed", None) is not None]
    for seed, count in Counter(seeds).items():
        if count > 1:
            paths = [log.path for log in scored if str(log.seed) == seed]
            # Byte-identical copies (train.log next to train_seed1337.log) are common and harmless.
            finals = {(log.final.val_loss, log.final.val_bpb) for log in scored if str(log.seed) == seed}
            if len(finals) > 1:
                report.add(Finding(
                    "SEED-BRUTEFORCE", "warning",
                    f"seed {seed} was run {count} times with different results ({', '.join(paths)}): repeated "
                    "runs of one seed are not independent samples, and picking among them is selection",
                    file=paths[0], source="log", data={"seed": seed, "logs": paths}))
    claimed = set(getattr(claims, "seeds", {}) or {}) if claims is not None else set()
    unreported = sorted({s for s in seeds if claimed and s not in claimed})
    if unreported:
        report.add(Finding(
            "SEED-BRUTEFORCE", "warning",
            f"logs contain scored runs for seeds {', '.join(unreported)} that submission.json does not report "
            f"(it reports {', '.join(sorted(claimed))}): every run should be reported",
            file=getattr(sub, "submission_json", None) and str(sub.submission_json), source="log",
            data={"unreported": unreported, "claimed": sorted(claimed)}))
    differences = _config_differences(scored)
    if differences:
        shown = "; ".join(f"{k}: {sorted(v)}" for k, v in list(differences.items())[:5])
        report.add(Finding(
            "SIGNIFICANCE", "warning",
            f"the seed runs do not share one configuration ({shown}); seeds from different configurations "
            "cannot be pooled into one test",
            file=scored[0].path, source="log", data={"differences": {k: sorted(v) for k, v in differences.items()}}))

"""Time and hardware budgets from the logs: TRAIN-TIME-600, EVAL-TIME-600, HARDWARE.

Timing in the logs is self-reported by the script, so these checks say what the logs claim, with numbers. The
accepted practice (rulebook §C, challenge-facts §9): the loop may overshoot the cap by its last step; GPTQ Hessian
collection on training data belongs inside the 600 s (a few seconds over was tolerated for #1855: warning);
evaluation is a separate 600 s per seed, and pre-quantization TTT on validation data counts toward it.
"""

from __future__ import annotations

import re

from harness.challenge import EVAL_BUDGET_S, RECORD_TRACK, TRAIN_BUDGET_S
from harness.submission.logs import LogRun, MetricLine
from harness.submission.manifest import claimed_track, declares_non_record, is_off_record
from harness.verdict import Report
from rules.finding import Evidence, Finding

LOOP_OVERSHOOT_S = 1.0  # the step on which the cap fires is finished and validated (baseline: 600.038 s)
HESSIAN_MARGIN_S = 5.0  # loop + Hessians over 600 s by at most this much: warning (#1855 ran ~604.3 s, accepted)


def check_budgets(logs: list[LogRun], claims, report: Report, scored: dict[str, MetricLine] | None = None) -> None:
    """Judge the time and hardware budgets of every run log; the track comes from the claims. `scored` maps a log
    to the metric line the claim was read from where that is not the log's final line (that pass is timed)."""
    runs = [r for r in logs if r.is_run_log]
    track = claimed_track(claims)
    if not runs:
        for rule in ("TRAIN-TIME-600", "EVAL-TIME-600", "HARDWARE"):
            report.skip(rule, "no run log to read timings or hardware from")
        return
    if is_off_record(track):
        report.skip("TRAIN-TIME-600", f"track {track}: the 600 s training budget applies to the record track")
        report.skip("EVAL-TIME-600", f"track {track}: the 600 s evaluation budget applies to the record track")
        report.skip("HARDWARE", f"track {track}: other hardware is allowed off the record track")
        return
    declared_off = declares_non_record(claims) if track == RECORD_TRACK else None
    if declared_off is not None:  # filed in the record track, but submission.json says it claims no record
        track = f"{RECORD_TRACK}, declared non-record ({declared_off})"
    _train_time(runs, track, report)
    _hardware(runs, track, report)
    _declared_hardware(claims, runs, track, report)
    _eval_time(runs, track, report, scored or {})
    _declared_eval_time(claims, runs, track, report, scored or {})


def _severity(track: str | None, severity: str) -> str:
    """With the track unknown, or a run that declares it claims no record, a budget breach is a warning."""
    return severity if track == RECORD_TRACK or severity != "error" else "warning"


def _note(track: str | None) -> str:
    return "" if track == RECORD_TRACK else " (track unknown: reported as a warning)" if track is None \
        else f" (track {track}: reported as a warning)"


def _train_time(runs: list[LogRun], track: str | None, report: Report) -> None:
    judged = False
    note = _note(track)
    for run in runs:
        # A run that stops on a step count instead of the wall clock breaks the budget only if its loop ran past
        # 600 s, which the measured loop time below decides; the missing cap itself is a warning.
        measured = ("" if run.train_time_ms is None else
                    f"; the logged loop took {run.train_time_ms / 1000:.1f} s, judged below")
        if "force_stop" in run.tags:
            report.add(Finding("TRAIN-TIME-600", "warning",
                               f"the run stops on a step count (FORCE_STOP_STEP), not on the wall-clock cap{measured}",
                               file=run.path, line=run.line_of.get("force_stop") or run.line_of.get("hyperparameters"),
                               seed=run.seed, source="log"))
        if run.max_wallclock_seconds is not None and run.max_wallclock_seconds <= 0:
            report.add(Finding("TRAIN-TIME-600", "warning",
                               f"max_wallclock_seconds is {run.max_wallclock_seconds:g}: no wall-clock cap, the run "
                               f"stops on the iteration count{measured}", file=run.path, seed=run.seed, source="log"))
        if run.train_time_ms is None:
            continue
        judged = True
        loop_s = run.train_time_ms / 1000.0
        line = run.line_of.get("stopping_early")
        if loop_s > TRAIN_BUDGET_S + LOOP_OVERSHOOT_S:
            report.add(Finding("TRAIN-TIME-600", _severity(track, "error"),
                               f"training loop took {loop_s:.1f} s (> {TRAIN_BUDGET_S:.0f} s){note}",
                               file=run.path, line=line, seed=run.seed, source="log",
                               data={"train_time_s": loop_s}))
            continue
        if run.hessian_time_s is not None:
            total = loop_s + run.hessian_time_s
            over = total - TRAIN_BUDGET_S
            if over > 0:
                severity = "warning" if over <= HESSIAN_MARGIN_S else _severity(track, "error")
                reserve = f", GPTQ reserve {run.gptq_reserve_s:g} s" if run.gptq_reserve_s is not None else ""
                report.add(Finding(
                    "TRAIN-TIME-600", severity,
                    f"loop {loop_s:.1f} s + GPTQ Hessians on training data {run.hessian_time_s:.1f} s = {total:.1f} s"
                    f" (> {TRAIN_BUDGET_S:.0f} s by {over:.1f} s{reserve}){note}",
                    file=run.path, line=run.line_of.get("gptq_collected"), seed=run.seed, source="log",
                    evidence=(Evidence(run.path, line, f"loop ends at {loop_s:.1f} s"),),
                    data={"train_time_s": loop_s, "hessian_s": run.hessian_time_s, "total_s": total}))
    if judged:
        report.mark_checked("TRAIN-TIME-600")
    else:
        report.skip("TRAIN-TIME-600", "no log prints the training time")


def _eval_seconds(run: LogRun) -> tuple[float | None, str]:
    """The scored evaluation of one run, in seconds, and how it was summed."""
    if run.eval_time_s is None and run.prequant_ttt_s is None:
        return None, ""
    parts = []
    total = 0.0
    if run.eval_time_s is not None:
        total += run.eval_time_s
        parts.append(("total_eval_time" if run.total_eval_time_s is not None else f"{run.final.tag} eval_time")
                     + f" {run.eval_time_s:.1f} s")
    if run.prequant_ttt_s is not None:
        total += run.prequant_ttt_s
        parts.append(f"pre-quantization TTT {run.prequant_ttt_s:.1f} s")
    return total, " + ".join(parts)


def _eval_time(runs: list[LogRun], track: str | None, report: Report, scored: dict[str, MetricLine]) -> None:
    judged = False
    note = _note(track)
    for run in runs:
        seconds, how = _eval_seconds(run)
        claimed = scored.get(run.path)
        if claimed is not None and claimed.eval_time_ms is not None and (run.final is None
                                                                         or claimed.line != run.final.line):
            # The claim is an earlier pass than the log's last one: that pass is the scored evaluation, and a
            # later one is a diagnostic (rulebook EVAL-TIME-600, false-positive traps).
            later = seconds
            seconds = claimed.eval_time_ms / 1000.0 + (run.prequant_ttt_s or 0.0)
            how = f"{claimed.tag} eval_time {claimed.eval_time_ms / 1000.0:.1f} s (the pass the claim equals)" + (
                f" + pre-quantization TTT {run.prequant_ttt_s:.1f} s" if run.prequant_ttt_s is not None else "")
            if later is not None and later > EVAL_BUDGET_S >= seconds:
                report.add(Finding("EVAL-TIME-600", "warning",
                                   f"a later evaluation pass, not the one the claimed val_bpb equals, took {later:.1f}"
                                   f" s (> {EVAL_BUDGET_S:.0f} s); the claimed pass {claimed.tag} took {seconds:.1f} s",
                                   file=run.path, line=run.final.line if run.final else None, seed=run.seed,
                                   source="log", evidence=(Evidence(run.path, claimed.line, claimed.text),),
                                   data={"eval_time_s": later, "claimed_pass_s": seconds}))
        if seconds is None:
            continue
        judged = True
        if seconds > EVAL_BUDGET_S:
            line = (claimed.line if claimed is not None and claimed.eval_time_ms is not None else None) or \
                run.line_of.get("total_eval_time") or (run.final.line if run.final else None)
            report.add(Finding("EVAL-TIME-600", _severity(track, "error"),
                               f"scored evaluation took {seconds:.1f} s (> {EVAL_BUDGET_S:.0f} s): {how}{note}",
                               file=run.path, line=line, seed=run.seed, source="log",
                               data={"eval_time_s": seconds}))
    if judged:
        report.mark_checked("EVAL-TIME-600")
    else:
        report.skip("EVAL-TIME-600", "no log prints an evaluation time")


_EVAL_KEYS = re.compile(r"^(total_)?(ttt_)?eval_(wall)?(clock_)?time(_ttt|_total)?(_seconds|_s|_sec|_ms)?"
                        r"(_max(_s)?|_total)?$")


def _declared_eval_time(claims, runs: list[LogRun], track: str | None, report: Report,
                        scored: dict[str, MetricLine]) -> None:
    """An evaluation time over 600 s that submission.json itself declares for the claimed result (at the top level,
    or in a per-run entry whose val_bpb is the claimed one): the author's own timing of the scored evaluation. An
    error on the record track unless a log times the claimed pass inside the budget (then a warning)."""
    raw = getattr(claims, "raw", None) or {}
    claimed = getattr(claims, "val_bpb", None)
    found: list[tuple[str, float]] = []
    entries = [("", raw)] + [(f"{k}.", v) for k, v in raw.items() if isinstance(v, dict)]
    entries += [(f"{k}.{j}.", e) for k, v in raw.items() if isinstance(v, dict)
                for j, e in v.items() if isinstance(e, dict)]
    for prefix, entry in entries:
        if prefix and not _is_claimed(_float(entry.get("val_bpb")), claimed):
            continue  # a per-run entry that is not the claimed result
        for key, value in entry.items():
            seconds = _float(value) if _EVAL_KEYS.match(key) else None
            if seconds is not None and re.search(r"_ms(_|$)", key):
                seconds /= 1000.0  # `eval_time_ms`, `eval_time_ms_max`
            if seconds is not None and seconds > EVAL_BUDGET_S:
                found.append((prefix + key, seconds))
    if not found:
        return
    key, seconds = max(found, key=lambda f: f[1])
    # A log that prints the claimed val_bpb and times that pass inside the budget: what ran outweighs the JSON.
    timed = [_eval_seconds(r)[0] for r in runs if _is_claimed(getattr(scored.get(r.path) or r.final, "val_bpb", None),
                                                               claimed)]
    logged_ok = bool(timed) and all(t is not None and t <= EVAL_BUDGET_S for t in timed)
    report.add(Finding("EVAL-TIME-600", "warning" if logged_ok else _severity(track, "error"),
                       f"submission.json declares {key} = {seconds:.1f} s for the claimed result (> "
                       f"{EVAL_BUDGET_S:.0f} s)" + (" (a log printing the claimed val_bpb times that pass inside the "
                                                     "budget)" if logged_ok else _note(track)),
                       file=getattr(claims, "path", None) or "submission.json", source="artifact",
                       data={"eval_time_s": seconds, "key": key}))
    report.mark_checked("EVAL-TIME-600")


def _is_claimed(value: float | None, claimed: float | None) -> bool:
    """VALUE is the claimed val_bpb (to the 8 decimals submissions print)."""
    return value is not None and claimed is not None and abs(value - claimed) <= 5e-9


def _float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # numbers arrive as text (the manifest's parse hooks)
    except (TypeError, ValueError):
        return None


_OTHER_HARDWARE = re.compile(r"(?i)\b(pcie|nvl|a100|a10g?|a40|a6000|l4|l40s?|h200|h20|b200|gh200|mi\d{3}x?|v100|t4|"
                             r"rtx|geforce|tpu|\d{4}\s*ti)\b|\b([1-7]|16)\s*[x×]\s*h100")
_DECLARED_KEYS = ("hardware", "gpu", "gpus", "hardware_used", "compute", "device")


def _declared_hardware(claims, runs: list[LogRun], track: str | None, report: Report) -> None:
    """The hardware submission.json itself declares: another accelerator, a PCIe/NVL H100 or another GPU count on
    the record track is the author's own statement that the run is not 8xH100 SXM. An error unless the logs show
    eight H100 SXM GPUs by name (the logs are what ran; then the declaration is a warning)."""
    raw = getattr(claims, "raw", None) or {}
    declared = next((str(raw[k]) for k in _DECLARED_KEYS if isinstance(raw.get(k), (str, int))), None)
    if declared is None or not _OTHER_HARDWARE.search(declared):
        return
    shown = any(len(r.gpu_names) == 8 and all("H100" in g.upper() and "PCIE" not in g.upper() and "NVL" not in
                                               g.upper() for g in r.gpu_names) for r in runs)
    report.add(Finding("HARDWARE", "warning" if shown else _severity(track, "error"),
                       f"submission.json declares the hardware as {declared[:80]!r}, not 8xH100 SXM"
                       + (" (the logs list eight H100 SXM GPUs)" if shown else ""),
                       file=getattr(claims, "path", None) or "submission.json", source="artifact"))


def _hardware(runs: list[LogRun], track: str | None, report: Report) -> None:
    note = _note(track)
    unknown: list[str] = []
    model_missing: list[str] = []
    for run in runs:
        bad_gpus = sorted({g for g in run.gpu_names if "H100" not in g.upper()})
        not_sxm = sorted({g for g in run.gpu_names if "H100" in g.upper() and ("PCIE" in g.upper() or "NVL" in g.upper())})
        line = run.line_of.get("world_size")
        if bad_gpus or not_sxm:
            report.add(Finding("HARDWARE", _severity(track, "error"),
                               f"the log shows {', '.join(bad_gpus + not_sxm)}, not H100 SXM{note}",
                               file=run.path, seed=run.seed, source="log", data={"gpus": run.gpu_names}))
        if run.world_size is not None and run.world_size != 8:
            report.add(Finding("HARDWARE", _severity(track, "error"),
                               f"world_size {run.world_size}, not 8 GPUs{note}", file=run.path, line=line,
                               seed=run.seed, source="log"))
        elif run.gpu_names and len(run.gpu_names) != 8 and run.world_size is None:
            report.add(Finding("HARDWARE", _severity(track, "error"),
                               f"nvidia-smi lists {len(run.gpu_names)} GPUs, not 8{note}", file=run.path,
                               seed=run.seed, source="log"))
        if run.world_size is None and not run.gpu_names:
            unknown.append(run.path)
        elif not run.gpu_names:
            model_missing.append(run.path)
    if unknown:
        report.add(Finding("HARDWARE", "warning",
                           "the log shows neither the GPU model nor the world size: hardware cannot be determined"
                           f" ({', '.join(unknown[:5])})", file=unknown[0], source="log"))
    if model_missing:
        report.add(Finding("HARDWARE", "info", "world size printed but not the GPU model: "
                           + ", ".join(model_missing[:5]), file=model_missing[0], source="log"))
    report.mark_checked("HARDWARE")

"""`check`: the static verdict on a submission folder or a single script, as one pipeline.

Each stage reads the submission (never writes to it) and adds findings to one Report. A stage that breaks on input
nobody anticipated does not take the others down: its rules are reported as not checked and the verdict cannot be
"pass" (exit 2), which is the honest answer for "we could not look".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.challenge import RECORD_TRACK, TRACK_FOLDERS
from harness.check.allowlist import apply_allow_list, load_allow_list
from harness.errors import UserError
from harness.submission.folder import Submission, load_submission
from harness.submission.manifest import is_off_record
from harness.verdict import Report
from rules.catalogue import RULES
from rules.finding import Finding

# Which rules each stage judges; used to mark them "not checked" when the stage cannot run, and by `rules`.
STAGE_RULES: dict[str, tuple[str, ...]] = {
    "layout": ("SUBMISSION-FORMAT",),
    "claims": ("SIGNIFICANCE",),
    "size": ("ARTIFACT-CAP-16MB", "CODE-COUNTING"),
    "budgets": ("TRAIN-TIME-600", "EVAL-TIME-600", "HARDWARE"),
    "metric": ("BPB-BYTE-LUT", "FULL-VAL-TOKEN-COUNT", "TRAIN-VAL-OVERLAP", "TOKENIZER-CHANGE-PROOF"),
    "consistency": ("LOG-CODE-CONSISTENCY",),
    "binding": ("LOG-CODE-CONSISTENCY",),
    "seeds": ("SEED-BRUTEFORCE",),
    "significance": ("SIGNIFICANCE",),
}

# How each stage judges: from the code, the logs, the artifact files, or by running the code.
STAGE_KIND = {"layout": "files", "code": "code", "logs": "logs", "claims-load": "logs", "claims": "logs",
              "size": "artifact+logs", "consistency": "logs+code", "binding": "logs+code", "rules": "static code",
              "text-scans": "static code", "budgets": "logs", "metric": "logs", "seeds": "logs",
              "significance": "statistics", "probe": "runtime probe", "claim-scope": "logs", "budget-evidence": "logs"}

# Rules that only running the code can settle; `probe` and `reproduce` judge them at run time.
RUNTIME_ONLY_REASON = "needs a run: use `probe` or `reproduce --probe`"


@dataclass(frozen=True)
class CheckOptions:
    against: str | None = None  # reference for SIGNIFICANCE: a record folder or per-seed numbers
    policy: str = "readme"  # "readme" (0.005 nats, p < 0.01) or "frontier" (Welch, p < 0.25)
    allow_file: Path | None = None  # reviewer allow-list
    strict_size: bool = False  # judge the cap on shipped bytes only
    probe: bool = False  # also run the runtime probes (slow: runs the script at tiny scale)
    probe_timeout: float = 300.0


def _run_stage(report: Report, name: str, stage: Callable[[], object]) -> object:
    """Run one stage; an unexpected failure becomes a could-not-check entry instead of a traceback."""
    started = time.perf_counter()
    before = set(report.checked)
    try:
        return stage()
    except UserError:
        raise  # bad input (e.g. an unreadable --against) is the user's to fix: one line, exit 2
    except Exception as exc:  # noqa: BLE001 - one broken stage must not hide the others' findings
        report.could_not_check.append(f"{name}: internal error ({type(exc).__name__}: {exc})")
        for rule in STAGE_RULES.get(name, ()):
            report.skip(rule, f"the {name} stage failed")
        return None
    finally:
        report.timings_ms[name] = round((time.perf_counter() - started) * 1000, 1)
        for rule in [r for r in report.checked if r not in before]:
            report.judged_by.setdefault(rule, []).append(STAGE_KIND.get(name, name))


def check_submission(sub: Submission, options: CheckOptions, report: Report) -> Report:
    """Run every stage over an already-loaded submission."""
    from harness.check.binding import check_binding
    from harness.check.budget_evidence import off_record_training_reads, train_reads_within_reserve
    from harness.check.budgets import check_budgets
    from harness.check.claim_scope import scope_to_claim
    from harness.check.claims import check_claims
    from harness.check.consistency import check_log_code
    from harness.check.layout import check_layout
    from harness.check.metric import check_metric
    from harness.check.seeds import check_seeds
    from harness.check.significance import check_significance
    from harness.check.size import check_size
    from harness.check.static_rules import documented_env, run_static_rules, run_text_scans
    from harness.submission.code import load_code
    from harness.submission.logs import load_logs
    from harness.submission.manifest import load_claims

    allow = load_allow_list(options.allow_file)
    _run_stage(report, "layout", lambda: check_layout(sub, report))
    code = _run_stage(report, "code", lambda: load_code(sub))
    logs = _run_stage(report, "logs", lambda: load_logs(sub)) or []
    claims = _run_stage(report, "claims-load", lambda: load_claims(sub, report))
    _infer_track_from_location(sub, claims, report)
    if claims is not None and isinstance(report.facts.get("claims"), dict):  # the facts show the track judged by
        report.facts["claims"].update(track=claims.track, schema_notes=list(claims.schema_notes))
    compared = None
    if claims is not None:
        compared = _run_stage(report, "claims", lambda: check_claims(claims, logs, report))
    if code is not None:
        _run_stage(report, "size", lambda: check_size(sub, code, logs, report, strict_size=options.strict_size))
        _run_stage(report, "consistency", lambda: check_log_code(code, logs, report, _other_scripts(sub, code),
                                                                 documented_env(sub)))
        _run_stage(report, "binding", lambda: check_binding(sub, code, logs, report))
        claimed = compared["val_bpb"].lines if compared else ()
        _run_stage(report, "rules", lambda: run_static_rules(code, logs, report, claimed, documented_env(sub)))
        _run_stage(report, "text-scans", lambda: run_text_scans(sub, code, report))
        _note_unanalysable_code(code, report)
    scored = compared["val_bpb"].scored if compared else {}
    _run_stage(report, "budgets", lambda: check_budgets(logs, claims, report, scored))
    _run_stage(report, "metric", lambda: check_metric(logs, claims, report))
    _run_stage(report, "seeds", lambda: check_seeds(sub, code, claims, logs, report))
    _run_stage(report, "claim-scope", lambda: scope_to_claim(compared, report, logs))
    _run_stage(report, "budget-evidence", lambda: train_reads_within_reserve(logs, report))
    _run_stage(report, "budget-evidence", lambda: off_record_training_reads(claims, report))
    _run_stage(report, "significance",
               lambda: check_significance(claims, logs, options.against, options.policy, report))
    if options.probe:
        _run_stage(report, "probe", lambda: _probe(sub, options, report))
    apply_allow_list(report, allow)
    _list_unchecked(report)
    return report


def _probe(sub: Submission, options: CheckOptions, report: Report) -> None:
    """Run the runtime probes and fold their findings in: those rules are then proven at run time."""
    from harness.run.probe import ProbeOptions, probe_path

    probed = probe_path(Path(sub.script if sub.single_script else sub.root), ProbeOptions(timeout=options.probe_timeout))
    report.merge(probed, "probe")
    for rule in probed.checked:  # also the rules a static stage judged before: now proven at run time too
        kinds = report.judged_by.setdefault(rule, [])
        if "runtime probe" not in kinds:
            kinds.append("runtime probe")


def check_path(path: Path, options: CheckOptions | None = None) -> Report:
    """Judge PATH (a submission folder or one script). Bad input raises UserError (exit 2 in the CLI)."""
    options = options or CheckOptions()
    if options.policy not in ("readme", "frontier"):
        raise UserError(f"unknown significance policy {options.policy!r} (readme or frontier)")
    sub = load_submission(Path(path))
    report = Report(target=str(path))
    return check_submission(sub, options, report)


OTHER_SCRIPT_MAX_BYTES = 2_000_000


def _other_scripts(sub: Submission, code) -> dict[str, str]:
    """The folder's .py files that the entry script does not run (relative path -> text): a log may come from one."""
    counted = {str(p) for p in (getattr(code, "counted_files", None) or {})}
    out = {}
    for rel in sub.files:
        rel_s = sub.display(rel)
        if rel.suffix != ".py" or rel_s in counted or (sub.script and sub.abs(rel) == sub.script):
            continue
        path = sub.abs(rel)
        if path.stat().st_size <= OTHER_SCRIPT_MAX_BYTES:
            out[rel_s] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _infer_track_from_location(sub: Submission, claims: object, report: Report) -> None:
    """The challenge repository's layout says which track a folder was submitted to: a PR that puts a run under
    records/track_10min_16mb/ asks to be judged by the record budgets, and one under track_non_record_16mb/ by the
    non-record ones, whatever its submission.json omits or says (a differing `track` is noted). One exception: a
    submission.json that itself declares an off-record track claims no record, so a record folder holding it is
    judged as declared, with a warning that the folder is misfiled."""
    if claims is None:
        return
    where = Path(sub.root).resolve().parent.name
    track = TRACK_FOLDERS.get(where)
    said = getattr(claims, "track", None)
    if track is None or said == track:
        return
    if track == RECORD_TRACK and is_off_record(said):
        claims.schema_notes.append(f"track {said} as submission.json declares, though filed under {where}/")
        report.add(Finding("SUBMISSION-FORMAT", "warning",
                           f"submission.json declares track {said!r} but the folder is under {where}/: judged as "
                           "declared (no record claim); a non-record run belongs under track_non_record_16mb/",
                           file=getattr(claims, "path", None) or "submission.json", source="artifact"))
        return
    claims.track = track
    claims.schema_notes.append(f"track {track} from the folder's location ({where}/)"
                               + (f"; submission.json says {said!r}" if said is not None else ""))


def _note_unanalysable_code(code: object, report: Report) -> None:
    """No Python unit to analyse means the code rules were not applied: the verdict cannot be pass."""
    units = getattr(code, "units", None) or []
    if not units:
        problems = "; ".join(getattr(code, "problems", []) or []) or "no train_gpt.py"
        report.could_not_check.append(f"no analysable Python code ({problems})")


def _list_unchecked(report: Report) -> None:
    """Every catalogue rule that no stage judged is listed as not checked, never as passing."""
    for rule_id in RULES:
        if rule_id not in report.checked and all(n.rule != rule_id for n in report.not_checked):
            report.skip(rule_id, "no static check for this rule yet; " + RUNTIME_ONLY_REASON)

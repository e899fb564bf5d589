"""Adapter from the static rules (rules/) to the report: run the engine over every Python unit of the CodeBundle.

The rules produce findings on the shipped file themselves (decoded code keeps the shipped file name and the
decoded line, and says "decoded"); this stage adds them, with the log hints the rules read. Reviewer allow-lists
are applied once, after every stage, by the pipeline (harness.check.allowlist); submissions cannot suppress
anything.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from harness.verdict import Report
from rules.base import LogHints
from rules.engine import analyse_unit, implemented_rule_ids
from rules.finding import Finding


def log_hints_from(logs: Iterable[Any], claimed: Iterable[str] = (), run_env: dict[str, str] | None = None) -> LogHints:
    """Tags seen and hyperparameters printed, merged over every run log (harness.submission.logs.LogRun), and
    CLAIMED: the output lines the claims stage read the claimed val_bpb from. RUN_ENV: the environment assignments of
    the documented run command (`run_command_env`), read where no log prints that setting."""
    tags: set[str] = set()
    hyper: dict[str, str] = {}
    lines: dict[str, None] = {}
    for run in logs or []:
        tags |= set(getattr(run, "tags", None) or ())
        for key, value in (getattr(run, "hyperparameters", None) or {}).items():
            hyper.setdefault(str(key), str(value))
        if getattr(run, "is_run_log", False):
            lines.update(dict.fromkeys(getattr(run, "output_lines", None) or ()))
    logged = {key.lower() for key in hyper}
    for key, value in (run_env or {}).items():
        if key.lower() not in logged:  # what a log prints wins over what the README says was run
            hyper[key] = value
    return LogHints(frozenset(tags), hyper, tuple(lines), tuple(dict.fromkeys(claimed)))


_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Z][A-Z0-9_]*)=(\S*)$")
_LAUNCH = re.compile(r"\b(?:torchrun|python3?|accelerate)\b[^\n]*\.py\b")


def run_command_env(text: str, scripts: Iterable[str] | None = None) -> dict[str, str]:
    """`KEY=VALUE` assignments in front of a launch command (`TTT_ENABLED=1 torchrun ... train_gpt.py`, also over
    backslash-continued lines) and `export KEY=VALUE` lines of a README or launcher: the configuration it says ran.
    Where the text shows several launch commands (the run and its ablations), a setting counts only when every one
    of them gives it the same value: a text that launches both `TTT_ENABLED=0` and `TTT_ENABLED=1` runs, or one
    run with the flag and one without, does not say which produced the score. SCRIPTS (file names), when given:
    only commands that launch one of them count (a data download run before training sets nothing)."""
    exported: dict[str, str] = {}
    commands: list[dict[str, str]] = []
    for logical in re.sub(r"\\\n", " ", text).splitlines():
        words = logical.strip().strip("`$ ").split()
        if len(words) == 2 and words[0] == "export" and (m := _ASSIGNMENT.match(" ".join(words))):
            exported.setdefault(m.group(1), m.group(2).strip("'\""))
            continue
        launch = _LAUNCH.search(logical)
        if launch is None or (scripts is not None and not set(re.findall(r"([\w.-]+\.py)\b", launch.group()))
                              & set(scripts)):
            continue
        env: dict[str, str] = {}
        for word in words:
            m = _ASSIGNMENT.match(word)
            if m is None:
                break  # the assignments end where the command starts
            env.setdefault(m.group(1), m.group(2).strip("'\""))
        if env not in commands:
            commands.append(env)
    agreed = {k: v for k, v in commands[0].items() if all(c.get(k) == v for c in commands[1:])} if commands else {}
    return {**exported, **agreed}


def documented_env(sub: Any) -> dict[str, str]:
    """The environment the folder's README.md run command sets (`run_command_env`); empty without a readable one."""
    path = sub.abs("README.md")
    text = _read_text(path) if path.is_file() else None
    return run_command_env(text, {p.name for p in sub.files if p.suffix == ".py"}) if text is not None else {}


def run_static_rules(code: Any, logs: Iterable[Any], report: Report, claimed: Iterable[str] = (),
                     run_env: dict[str, str] | None = None) -> None:
    """Run every static rule over every Python unit of CODE (a harness.submission.code.CodeBundle) into REPORT;
    CLAIMED: the log lines the claimed val_bpb was read from (harness.check.claims.Comparison.lines); RUN_ENV: the
    documented run command's environment (`run_command_env`)."""
    hints = log_hints_from(logs, claimed, run_env)
    failed: dict[str, str] = {}
    for unit in getattr(code, "units", []) or []:
        result = analyse_unit(unit, hints)
        report.analysis_problems.extend(result.problems)
        for rule, why in result.failed.items():
            failed.setdefault(rule, f"{unit.path}: {why}")
        for path, seconds in result.seconds.items():
            report.timings_ms[f"static rules: {path} ({unit.origin})"] = round(seconds * 1000, 1)
        for finding in result.findings:  # a rule that failed on another unit keeps what it found on this one
            report.add(finding)
    report.mark_checked(*(rule for rule in implemented_rule_ids() if rule not in failed))
    for rule, why in sorted(failed.items()):
        report.skip(rule, f"{rule} failed ({why})")


# Files that are not Python but still say what runs: compiled C/C++ helpers, and shell commands in the README or in
# shipped scripts (how the run was launched, e.g. a validation shard linked in as a training shard, PR #44).
SHELL_SUFFIXES = (".sh", ".bash")
MAX_SCAN_BYTES = 2_000_000  # larger text files are not read: a README or a helper is far smaller


def _read_text(path) -> str | None:
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def run_text_scans(sub: Any, code: Any, report: Report) -> None:
    """Scan native sources (NGRAM-GATE-ON-TARGET) and launch instructions (TRAIN-ON-VAL) that the AST rules miss."""
    from rules.ngram_gate_on_target import scan_native
    from rules.train_on_val import scan_text

    for rel in getattr(code, "native_sources", []) or []:
        text = _read_text(sub.abs(rel))
        for line, note in scan_native(rel, text) if text is not None else []:
            report.add(Finding("NGRAM-GATE-ON-TARGET", "warning",
                               f"per-position loop in compiled code gates a hint on the token being predicted: {note}",
                               file=rel, line=line, source="static"))
    launchers = [f for f in getattr(sub, "files", []) if f.name == "README.md" or f.suffix in SHELL_SUFFIXES]
    for rel in launchers:
        text = _read_text(sub.abs(rel))
        for line, note in scan_text(rel.as_posix(), text) if text is not None else []:
            report.add(Finding("TRAIN-ON-VAL", "error", f"training reads validation data: {note}",
                               file=rel.as_posix(), line=line, source="static"))

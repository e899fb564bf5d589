"""LOG-CODE-CONSISTENCY: the code that produced the logs must be the code that is shipped.

Two pieces of evidence in the logs: the source dump that many scripts print at the top of their log, and the
`Code size` line, and the hyperparameter echo: a setting the log prints that no shipped code names (in any
spelling: `ttt_hash_embed`, `TTT_HASH_EMBED`, `--ttt-hash-embed`) was not printed by this code. A dump that equals no piece of the shipped code (the script as shipped, or any decoded unit of a
self-extracting shim) is an error with the first differing line. A `Code size` that differs from the shipped bytes
is an error, unless the log also prints a compressed/wrapper size (the notional-wrapper accounting of the
2026-04-10 ... 04-29 records), where it is a warning.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from types import SimpleNamespace

from harness.check.dump_diff import (
    SMALL_EDIT_FRACTION,
    SMALL_EDIT_LINES,
    ChangedSetting,
    close_modulo_comments,
    compiles,
    literal_edit,
    only_paces_output,
    print_keys,
    same_code_but_comments,
    same_program,
)
from harness.check.printed import check_printed_precision
from harness.submission.logs import LogRun
from harness.verdict import Report
from rules.finding import Evidence, Finding


def _normalise(text: str) -> list[str]:
    """Lines without trailing whitespace and without trailing blank lines (log writers add or drop them)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def diff_summary(dumped: list[str], shipped: list[str]) -> tuple[int | None, int, str]:
    """(first differing line, 1-based, or None; number of differing lines; a one-line summary)."""
    first = next((i + 1 for i, (a, b) in enumerate(zip(dumped, shipped)) if a != b), None)
    if first is None and len(dumped) != len(shipped):
        first = min(len(dumped), len(shipped)) + 1
    only_log = Counter(dumped) - Counter(shipped)
    only_code = Counter(shipped) - Counter(dumped)
    changed = max(sum(only_log.values()), sum(only_code.values()))
    summary = (f"first difference at line {first}; the dump has {len(dumped)} lines, the shipped code "
               f"{len(shipped)}; {sum(only_log.values())} lines only in the log, {sum(only_code.values())} only in "
               "the code")
    return first, changed, summary


def _unit_texts(code) -> list[tuple[str, str, list[str]]]:
    units = []
    for unit in getattr(code, "units", None) or []:
        text = getattr(unit, "text", None)
        if isinstance(text, str):
            units.append((getattr(unit, "path", "?"), getattr(unit, "origin", "shipped"), _normalise(text)))
    return units


def _shipped_bytes(code) -> int | None:
    value = getattr(code, "shipped_bytes", None)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, int):
        return value
    for unit in getattr(code, "units", None) or []:
        b = getattr(unit, "shipped_bytes", None)
        if isinstance(b, (bytes, bytearray)):
            return len(b)
        if isinstance(b, int):
            return b
    return None


def _sources(code) -> dict[str, bytes]:
    """The code's own bytes per unit: shipped units by path, decoded shim payloads as "<path> (decoded)"."""
    out = {}
    for unit in getattr(code, "units", None) or []:
        key = f"{unit.path} (decoded)" if unit.origin == "decoded" else unit.path
        out.setdefault(key, unit.text.encode("utf-8"))
    return out


def check_log_code(code, logs: list[LogRun], report: Report, other_scripts: dict[str, str] | None = None,
                   run_env: dict[str, str] | None = None) -> None:
    """Compare every log's source dump and `Code size` line with the shipped code. `other_scripts` (relative path
    -> text) are the folder's other .py files, which the entry script does not run: a log they produced is
    consistent with shipped code, but not with the entry script, and that is a warning. RUN_ENV: the environment
    the documented run command sets (harness.check.static_rules.run_command_env)."""
    runs = [r for r in logs if r.is_run_log]
    units = _unit_texts(code)
    others = [(path, "other", _normalise(text)) for path, text in (other_scripts or {}).items()]
    other_sizes = {path: len(text.encode("utf-8")) for path, text in (other_scripts or {}).items()}
    shipped = _shipped_bytes(code)
    counted, sources = _counted_sizes(code), _sources(code)  # the same for every log
    judged = False
    code_units = getattr(code, "units", None) or []
    # Code that executes a payload no unit decodes cannot be read for the names it defines: no settings check.
    unreadable = not any(getattr(u, "origin", "") == "decoded" for u in code_units) and any(
        _EXEC_CALL.search(getattr(u, "text", "") or "") for u in code_units)
    code_words = "" if unreadable else _setting_words(code_units)
    other_words = _setting_words([SimpleNamespace(text=t) for t in (other_scripts or {}).values()])
    for run in runs:
        if run.dumped_settings and code_words:
            judged = True
            _compare_settings(run, code_words, other_words, report)
        if run.embedded_source and units:
            judged = True
            sizes = {shipped, *counted.values(), *other_sizes.values()} - {None}
            _compare_dump(run, units, others, sizes, report, runs, run_env)
        if run.code_size_bytes is not None and shipped is not None:
            judged = True
            _compare_size(run, shipped, counted, other_sizes, report, sources)
    if units:
        check_printed_precision(code, runs, report)
    if judged:
        report.mark_checked("LOG-CODE-CONSISTENCY")
    elif not runs:
        report.skip("LOG-CODE-CONSISTENCY", "no run log")
    else:
        report.skip("LOG-CODE-CONSISTENCY", "the logs carry neither a source dump nor a Code size line")


_EXEC_CALL = re.compile(r"(?<![\w.])(?:exec|eval)\s*\(")
UNKNOWN_SETTINGS_ERROR = 2  # this many echoed settings no shipped code names: other code, not a renamed knob
MIN_SETTING_LEN = 4  # shorter keys (lr, wd, k) are too common to tell code apart


def _setting_words(units) -> str:
    """All code text, lower case, dashes as underscores: where an echoed setting's name is looked up."""
    return "\n".join(getattr(u, "text", "") or "" for u in units).lower().replace("-", "_")


def _compare_settings(run: LogRun, code_words: str, other_words: str, report: Report) -> None:
    """Settings the log's hyperparameter dump (an indented `Hyperparameters:` block) prints that the shipped code
    never names."""
    unknown = sorted(k for k in set(run.dumped_settings)
                     if len(k) >= MIN_SETTING_LEN and k.lower().replace("-", "_") not in code_words)
    if not unknown:
        return
    elsewhere = other_words and all(k.lower().replace("-", "_") in other_words for k in unknown)
    severity = "error" if len(unknown) >= UNKNOWN_SETTINGS_ERROR and not elsewhere else "warning"
    shown = ", ".join(f"{k}={run.hyperparameters[k]}" for k in unknown[:6]) + (" …" if len(unknown) > 6 else "")
    why = ("another script of the folder names them: the log was produced by that script" if elsewhere else
           "the log was produced by other code" if severity == "error" else
           "a setting renamed or removed after the run?")
    report.add(Finding(
        "LOG-CODE-CONSISTENCY", severity,
        f"the log echoes {len(unknown)} setting(s) that the shipped code never names ({shown}): {why}",
        file=run.path, line=run.line_of.get("hyperparameters"), seed=run.seed, source="log",
        data={"unknown_settings": unknown}))


def _compare_dump(run: LogRun, units: list[tuple[str, str, list[str]]], others: list[tuple[str, str, list[str]]],
                  file_sizes: set[int], report: Report, runs: list[LogRun] = (),
                  run_env: dict[str, str] | None = None) -> None:
    """One log's source dump against the shipped units (and the folder's other scripts). RUNS: every run log of the
    folder (what they print explains a changed default); RUN_ENV: the documented run command's environment. A seed
    run with other defaults is not excused by other seeds dumping the shipped code: its score is in the claim."""
    dumped, dump_line = _dump_of(run)
    for path, origin, lines in units + others:
        if _same_dump(run, dumped, lines):
            if origin == "other":  # shipped, but not the entry script: the record's score may not be its run's
                report.add(Finding(
                    "LOG-CODE-CONSISTENCY", "warning",
                    f"the source printed in the log is the shipped {path}, not the entry script: this log was "
                    f"produced by {path}", file=run.path, line=dump_line, seed=run.seed, source="log",
                    evidence=(Evidence(path, 1, "the script whose source the log prints"),), data={"file": path}))
            return  # equal (or, for a dump capped while reading, its prefix matches)
    overwritten = _overwritten_head(dumped, units + others)
    if overwritten is not None:  # console output written over the start of the log; the rest is a shipped file
        skipped, path = overwritten
        same_size = run.code_size_bytes in file_sizes
        report.add(Finding(
            "LOG-CODE-CONSISTENCY", "info" if same_size else "warning",
            f"the first {skipped} lines of the source printed in the log were overwritten (console output); the "
            f"remaining {len(dumped) - skipped} lines are the end of the shipped {path}"
            + (", and the logged Code size is that file's" if same_size else ""),
            file=run.path, line=dump_line, seed=run.seed, source="log", data={"overwritten_lines": skipped}))
        return
    results = [(diff_summary(dumped, lines), path, origin) for path, origin, lines in units + others]
    (first, changed, summary), path, origin = min(results, key=lambda r: r[0][1])
    log_line = (dump_line or 1) + (first or 1) - 1
    # Differences in whitespace alone (an edited log, a re-indented line) are not other code; nor is a dump that
    # cannot be source at all (console output interleaved with it) when the log's Code size is a shipped file's.
    only_whitespace = any([l.split() for l in lines] == [d.split() for d in dumped] for _, _, lines in units + others)
    closest = next(len(c) for p, o, c in units + others if p == path and o == origin)
    small = changed <= min(SMALL_EDIT_LINES, SMALL_EDIT_FRACTION * closest)
    candidates = [lines for _, _, lines in units + others if close_modulo_comments(dumped, lines)]
    comments = None if only_whitespace or not candidates else same_code_but_comments(dumped, candidates)
    if comments is not None:
        summary += "; the code is the same, only comments and blank lines differ" + (
            f" (after the first {comments} lines, which console output overwrote)" if comments else "")
        only_whitespace = True
    if not only_whitespace and any(same_program(dumped, lines) for _, _, lines in units + others):
        summary += "; both parse to the same program (only formatting and comments differ)"
        only_whitespace = True
    edit = None if only_whitespace or not candidates else literal_edit(dumped, candidates)
    if edit is not None and not edit[0]:
        edit = None  # no setting value differs: a small edit of code, judged as one below
    unexplained: list[ChangedSetting] = []
    if edit is not None:
        literals, code_lines, changes = edit
        summary += (f"; the program is the shipped one apart from {literals} setting values (defaults, paths, run "
                    f"ids)" + (f" and {code_lines} other lines" if code_lines else ""))
        # A changed default is the same program run with other settings only when something says what the run
        # used: a log line printing the setting, or the documented run command setting it. A default no log prints
        # and no command sets is a run the shipped code does not reproduce (judged on real PRs: learning-rate defaults edited after the run).
        shipped_text = "\n".join(next(c for p, o, c in units + others if p == path and o == origin))
        why = {c: _explained(c, runs, run_env or {}, shipped_text) for c in changes}
        # Every printed changed setting showing the shipped default: the run was launched with the shipped settings
        # through the environment, and the unprinted ones are taken to be the same (one printed otherwise is not).
        launched_shipped = "printed-shipped" in why.values() and "printed" not in why.values()
        unexplained = [c for c, w in why.items() if w is None and not launched_shipped]
        if unexplained:
            shown = ", ".join(f"{c.names[0]}={c.dumped} (shipped {c.shipped})" for c in unexplained[:4])
            summary += (f"; no log line prints and no documented run command sets {shown}"
                        + (" …" if len(unexplained) > 4 else "") + ": the run used defaults the shipped code does not have")
        small = not unexplained
    garbled = run.code_size_bytes in file_sizes and not compiles(dumped)
    # A handful of edited lines (a default rewritten to the value the run was launched with, a dead line removed,
    # a docstring line: the NaiveBaseline trap) is the same program, reported so a reviewer can look.
    if small and not (only_whitespace or garbled) and edit is None:
        summary += f"; a small edit ({changed} lines), the rest of the program is the shipped one"
    where = {"shipped": "the shipped ", "other": "the shipped (not run by the entry script) "}.get(origin, "the ")
    note = " (the dump does not compile; the logged Code size is that file's: console output cut into it)" \
        if garbled and not only_whitespace else ""
    report.add(Finding(
        "LOG-CODE-CONSISTENCY", "warning" if only_whitespace or garbled or small else "error",
        f"the source printed in the log differs from {where}{path}"
        + (" (decoded)" if origin not in ("shipped", "other") else "") + f": {summary}{note}",
        file=run.path, line=log_line, seed=run.seed, source="log",
        evidence=(Evidence(path, first, f"{'decoded ' if origin not in ('shipped', 'other') else ''}code at the "
                                        "first difference"),),
        data={"first_difference_line": first, "lines_changed": changed, "closest_file": path}))


def _dump_of(run: LogRun) -> tuple[list[str], int | None]:
    """The normalised source a log dumps and its first line: a log of several runs dumps the source before each, and
    the last dump belongs to the run whose score ends the log."""
    later = getattr(run, "later_sources", None) or []
    source, dump_line = later[-1] if later else (run.embedded_source, run.embedded_source_line)
    return _normalise(source), dump_line


def _same_dump(run: LogRun, dumped: list[str], lines: list[str]) -> bool:
    """Equal, or (for a dump capped while reading) its prefix matches."""
    return lines == dumped or (run.source_truncated and lines[: len(dumped) - 1] == dumped[:-1])


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.lower()


def _explained(change: ChangedSetting, runs: list[LogRun], run_env: dict[str, str], code: str = "") -> str | None:
    """What says which value the run used for a changed default, or that it does not change the trained model, or
    None: "same" (the literals mean one value: `"0.02"`, `0.02`); "command" (the documented run command sets it);
    "paces" (CODE reads it only to pace logging or evaluation); "printed-shipped" or "printed" (a log prints it, in
    its configuration lines or a `key:value` output line, under its own name or a key CODE prints it under; the
    first when a printed value is the shipped default, so a run was launched with the shipped setting)."""
    if _number(change.dumped) == _number(change.shipped):
        return "same"
    keys = {n.lower().replace("-", "_") for n in change.names}
    if not keys:
        return None
    if any(k.lower() in keys for k in run_env):
        return "command"
    if code and only_paces_output(code, change.names):
        return "paces"
    keys |= {k.lower() for k in print_keys(code, change.names)} if code else set()
    facts = {"seed": "seed", "max_wallclock_seconds": "max_wallclock_seconds", "iterations": "iterations",
             "train_seq_len": "seq_len"}
    printed = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(k) for k in sorted(keys)) + r")\s*[:=]\s*([^\s,]*)",
                         re.I)
    values = []
    for run in runs:
        values += [v for k, v in run.hyperparameters.items() if k.lower().replace("-", "_") in keys]
        values += [str(getattr(run, attr)) for key, attr in facts.items()
                   if key in keys and getattr(run, attr, None) is not None]
        values += [m.group(1) for line in run.output_lines for m in [printed.search(line)] if m]
    # Only values count: a source line that reached the output (`num_layers=args.num_layers`) prints none.
    values = [v for v in values if isinstance(_number(v), float) or v.lower() in ("true", "false")]
    if not values:
        return None
    # A log of several runs prints each one's settings: one printing the shipped value is a run of the shipped code.
    return "printed-shipped" if any(_number(v) == _number(change.shipped) for v in values) else "printed"


def _overwritten_head(dumped: list[str], candidates: list[tuple[str, str, list[str]]]) -> tuple[int, str] | None:
    """(lines lost, file) when the dump, after at most OVERWRITTEN_HEAD_LINES lines, resumes in the middle of a line
    of a candidate file (the cut line is a proper end of that line) and from there on is the end of that file, most
    of it; None otherwise. A dump whose first lines are other code is not this: they are whole lines, not a cut."""
    for skipped in range(1, min(OVERWRITTEN_HEAD_LINES, len(dumped) // 2)):
        cut, tail = dumped[skipped].strip(), dumped[skipped + 1:]
        for path, _origin, lines in candidates:
            at = len(lines) - len(tail) - 1  # the shipped line the cut belongs to
            if at < 0 or len(tail) < len(lines) // 2 or not cut:
                continue
            if lines[at].rstrip().endswith(cut) and len(cut) < len(lines[at].strip()) and lines[at + 1:] == tail:
                return skipped + 1, path
    return None


OVERWRITTEN_HEAD_LINES = 200  # console output written over the start of a log: at most this many lines are lost

SIZE_ERROR_FRACTION = 0.05  # a logged code size more than 5 % off the shipped script means other code ran
# A script that logs the size of a self-extracting wrapper it builds from its own source: the logged size is within
# this fraction of what a standard codec (lzma, zlib or brotli at their strongest) + base85 makes of the shipped
# source. A different script of that size by chance is unlikely, and the finding stays a warning.
WRAPPER_ESTIMATE_FRACTION = 0.06


def wrapper_estimates(source: bytes) -> dict[str, int]:
    """Sizes of the shipped source as a self-extracting wrapper: each codec's output in base85 (the payload of
    the common `exec(lzma.decompress(base64.b85decode(...)))` shims), without the few bytes of the loader line."""
    import base64
    import lzma
    import zlib

    import brotli

    packed = {"lzma": lzma.compress(source, preset=9 | lzma.PRESET_EXTREME),
              "lzma-raw": lzma.compress(source, format=lzma.FORMAT_RAW,
                                        filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]),
              "zlib": zlib.compress(source, 9), "brotli": brotli.compress(source, quality=11)}
    return {codec: len(base64.b85encode(blob)) for codec, blob in packed.items()}


def _counted_sizes(code) -> dict[str, int]:
    """Relative path -> byte count of every counted code file (CodeBundle.counted_files holds bytes or sizes)."""
    sizes = {}
    for path, value in (getattr(code, "counted_files", None) or {}).items():
        if isinstance(value, (bytes, bytearray)):
            sizes[str(path)] = len(value)
        elif isinstance(value, int):
            sizes[str(path)] = value
    return sizes


def _wrapper_match(logged: int, sources: dict[str, bytes]) -> tuple[str, int] | None:
    """(codec, estimated size) when LOGGED is a compressed wrapper of one of SOURCES, else None."""
    for text in sources.values():
        if logged >= len(text):
            continue
        for codec, size in _estimates(text).items():
            if abs(logged - size) <= WRAPPER_ESTIMATE_FRACTION * size:
                return codec, size
    return None


@lru_cache(maxsize=16)
def _estimates(source: bytes) -> dict[str, int]:
    return wrapper_estimates(source)


def _near_a_source(logged: int, shipped: int, sources: dict[str, bytes]) -> bool:
    """Whether LOGGED is within SIZE_ERROR_FRACTION of the shipped script or of a unit's own (decoded) source."""
    return any(size and abs(logged - size) <= SIZE_ERROR_FRACTION * size
               for size in (shipped, *(len(text) for text in sources.values())))


def _compare_size(run: LogRun, shipped: int, counted: dict[str, int], other_sizes: dict[str, int],
                  report: Report, sources: dict[str, bytes] | None = None) -> None:
    """The log's `Code size` against the shipped script, the counted files, the folder's other scripts and the
    decoded source behind a shim (SOURCES: path -> the code's own bytes, decoded where shipped wrapped)."""
    sources = sources or {}
    logged = run.code_size_bytes
    if logged == shipped:
        return
    line = run.line_of.get("code_size")
    wrapper = run.code_size_compressed_bytes
    same_file = next((p for p, n in {**counted, **other_sizes}.items() if n == logged), None)
    if same_file is not None or (counted and logged == sum(counted.values())):
        what = same_file or "all counted code files together"
        why = ("the log was produced by that script" if same_file in other_sizes and same_file not in counted
               else "the script that ran counted another file")
        report.add(Finding(
            "LOG-CODE-CONSISTENCY", "warning",
            f"log Code size {logged:,} bytes equals {what}, not the shipped train_gpt.py "
            f"({f'{shipped:,} bytes' if shipped else 'missing'}): {why}",
            file=run.path, line=line, seed=run.seed, source="log", data={"logged": logged, "shipped": shipped}))
        return
    # A log that also prints a compressed size counts a wrapper of its source (the notional-wrapper accounting); its
    # uncompressed figure is still the source's own length, so it must be near the shipped (or decoded) source.
    if wrapper is not None and _near_a_source(logged, shipped, sources):
        report.add(Finding(
            "LOG-CODE-CONSISTENCY", "warning",
            f"log Code size {logged:,} bytes vs shipped train_gpt.py {shipped:,} bytes; the log counts a "
            f"compressed wrapper of {wrapper:,} bytes instead (wrapper accounting, see CODE-COUNTING)",
            file=run.path, line=line, seed=run.seed, source="log",
            data={"logged": logged, "shipped": shipped, "wrapper": wrapper}))
        return
    if shipped == 0:
        return  # no shipped script at all: the layout check reports the missing file
    estimate = _wrapper_match(logged, sources)
    if estimate is not None:
        codec, size = estimate
        report.add(Finding(
            "LOG-CODE-CONSISTENCY", "warning",
            f"log Code size {logged:,} bytes vs shipped train_gpt.py {shipped:,} bytes: the shipped source as a "
            f"{codec} + base85 wrapper is {size:,} bytes, so the log counts a compressed wrapper of this code "
            "(wrapper accounting, see CODE-COUNTING)", file=run.path, line=line, seed=run.seed, source="log",
            data={"logged": logged, "shipped": shipped, "wrapper_estimate": size, "codec": codec}))
        return
    # Compare with the closest file whose code runs: behind an exec(open(...)) loader that is the loaded file,
    # not the 74-byte loader (#1412).
    decoded = {p: len(t) for p, t in sources.items() if p.endswith("(decoded)")}
    if logged in decoded.values():
        return  # the log counts the source behind the shim, byte for byte
    scripts = {p: n for p, n in {**counted, **other_sizes, **decoded}.items()
               if p.endswith((".py", "(decoded)")) and n > 0} or {"train_gpt.py": shipped}
    path, size = min(scripts.items(), key=lambda item: abs(logged - item[1]))
    # A few bytes apart is an edit after the run (a comment, a default); far apart is other code (#945: 98,302 vs
    # 47,686 bytes). Only the latter is an error without a source dump to compare.
    relative = abs(logged - size) / size
    severity = "error" if relative > SIZE_ERROR_FRACTION else "warning"
    report.add(Finding(
        "LOG-CODE-CONSISTENCY", severity,
        f"log Code size {logged:,} bytes but the shipped {path} is {size:,} bytes "
        f"({logged - size:+,}, {relative:.1%}): the log was produced by "
        + ("other code" if severity == "error" else "a slightly different version of the script"),
        file=run.path, line=line, seed=run.seed, source="log", data={"logged": logged, "shipped": size, "file": path}))

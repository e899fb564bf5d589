"""Read training logs: one `LogRun` per log file, with the final score, sizes, timings and run facts.

Logs come in many dialects (baseline `step:` lines, hyperparameter dumps, Unix-time prefixes, TTT lines, wrapper
code sizes). The parser is a single pass over lines, so a 100 MB log costs bounded memory: the embedded source dump
is kept only up to `MAX_SOURCE_CHARS`, and nothing else grows with the log except the list of metric lines. This
module holds the run's record and the state machine over a log; the grammar of single lines is
`harness.submission.log_lines`.

Choosing the final score: every line with `val_loss` and `val_bpb` is a metric line; step lines and diagnostics
(pre-quantization, `diagnostic ...`) are never final. Among the rest, the last line with a known final tag wins
(an `_exact` twin just before a rounded copy wins over the copy). Tag names are not trusted blindly: when the last
score is far worse than an earlier score in the same log, the run records an anomaly so that claim checks can
explain a claim that matches the earlier line (2026-04-04_SP4096 ends with a diverged TTT line).
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Iterable

from harness.submission.log_lines import (
    HYPER_ITEM,
    MAX_OUTPUT_LINES,
    is_source_like,
    read_hyper,
    read_line,
    read_metric,
    strip_prefix,
)

MAX_SOURCE_CHARS = 2_000_000  # cap on the embedded source kept per log (bounded memory on huge logs)
MAX_METRIC_LINES = 200_000  # a log with more metric lines than this is not a training log; stop collecting
SEPARATOR = "=" * 100
LATER_DUMP_MIN_LINES = 20  # a block between separators shorter than this is a banner, not a script
_SOURCE_START = re.compile(r'(?:"""|\'\'\'|import \w|from [\w.]+ import |#!)')
_LOOKS_LIKE_SOURCE = re.compile(r"(?m)^(?:import \w|from [\w.]+ import |def \w+\(|class \w+)")
DIVERGED_BPB_GAP = 0.05  # last score this much worse than an earlier score in the same log: flag it

_SEED_IN_NAME = re.compile(r"(?i)seed[_\-]?(\d+)|_s(\d+)(?=[._])|log_(\d+)(?=\.)")


@dataclass(frozen=True)
class MetricLine:
    tag: str
    val_loss: float | None
    val_bpb: float
    line: int
    eval_time_ms: float | None = None
    kind: str = "score"  # "score" (a candidate final score), "step" (in-training eval), "diagnostic"
    val_bpb_text: str = ""  # as printed: the claim checker compares at this precision
    val_loss_text: str = ""
    step: int | None = None
    text: str = ""  # the line as printed (stripped): the static rules match the claimed line against print calls


@dataclass
class LogRun:
    path: str  # relative to the submission folder, forward slashes
    seed: str | None = None
    seed_source: str | None = None  # "line", "hyperparameters" or "file name"
    final: MetricLine | None = None
    metrics: list[MetricLine] = field(default_factory=list)
    val_tokens: int | None = None
    train_shards: int | None = None
    total_size_bytes: int | None = None  # the capped total the log prints (compressed model + code)
    total_size_raw_bytes: int | None = None  # plain "Total submission size:" when a labelled one also exists
    model_bytes: int | None = None  # compressed model ("Serialized model <label>:")
    raw_model_bytes: int | None = None  # "Serialized model: N bytes" (raw torch save)
    code_size_bytes: int | None = None  # "Code size:" or "Code size (uncompressed):"
    code_size_compressed_bytes: int | None = None  # "Code size (compressed):" (wrapper accounting)
    train_time_ms: float | None = None
    stopped_early: bool = False
    last_step: int | None = None
    iterations: int | None = None
    eval_time_s: float | None = None  # the scored evaluation: total_eval_time, else the final line's eval_time
    total_eval_time_s: float | None = None
    prequant_ttt_s: float | None = None
    hessian_time_s: float | None = None
    gptq_reserve_s: float | None = None
    max_wallclock_seconds: float | None = None
    world_size: int | None = None
    gpu_names: list[str] = field(default_factory=list)
    embedded_source: str | None = None
    embedded_source_line: int | None = None  # first line of the dump in the log
    # Logs that hold several runs one after another dump the source again before each later separator: (text, line).
    later_sources: list[tuple[str, int]] = field(default_factory=list)
    source_truncated: bool = False
    hyperparameters: dict[str, str] = field(default_factory=dict)
    dumped_settings: list[str] = field(default_factory=list)  # the keys of an indented `Hyperparameters:` block
    tags: set[str] = field(default_factory=set)
    line_of: dict[str, int] = field(default_factory=dict)
    dataset_name: str | None = None  # from `dataset:<name> fineweb:<0|1>` (our reference trainer)
    dataset_is_fineweb: bool | None = None
    dataset_paths: list[str] = field(default_factory=list)
    tokenizer_path: str | None = None
    seq_len: int | None = None  # the longest train/eval sequence length printed (val token truncation unit)
    anomalies: list[str] = field(default_factory=list)
    n_lines: int = 0
    part: tuple[int, int] | None = None  # (k, n): the k-th of n complete runs printed one after another in one file
    # Every `<key>bpb<...>: <number>` figure on any line, read or not by the metric grammar: (line, key, number).
    bpb_figures: list[tuple[int, str, str]] = field(default_factory=list)
    # What the run printed (lines that do not look like Python; at most MAX_OUTPUT_LINES): a static rule reads a
    # guarded branch's own message here as evidence that the branch ran.
    output_lines: list[str] = field(default_factory=list)

    @property
    def is_run_log(self) -> bool:
        """True when the file shows a training or evaluation run (metric or step lines), not e.g. a pip freeze."""
        return bool(self.metrics) or self.train_time_ms is not None or self.last_step is not None


# A figure named like a bpb score (`val_bpb=`, `Quantized BPB: `) or a launcher's summary score (`| score=1.1900 |`):
# claims are compared with these only when no final score line explains them, and only by value at the claim's
# printed precision (a per-seed mean or a single run), so the key narrows the candidates but never decides.
BPB_FIGURE = re.compile(r"((?:[A-Za-z_][\w.]*[ \t])?(?:[A-Za-z_][\w.]*)?(?:bpb|score)[\w.]*)(?:\s*\([^)]{0,40}\))?\s*[:=]?\s*([0-9]+\.[0-9]+)", re.IGNORECASE)
MAX_BPB_FIGURES = 5000


class _Parser:
    """Line-by-line state machine; `feed` one line at a time, then `finish`."""

    def __init__(self, path: str, first_line: int = 1):
        self.run = LogRun(path=path)
        self.lineno = first_line - 1
        self.seen_separator = False
        self.pre_lines: list[str] = []  # text before the first separator: maybe an embedded source dump
        self.pre_chars = 0
        self.pre_start = first_line
        self.block_lines: list[str] = []  # lines since the last separator (after the first): maybe a later dump
        self.block_chars = 0
        self.block_start = first_line
        self.mode = "normal"  # normal | hyper | await_source | source
        self.source_parts: list[str] = []
        self.source_chars = 0
        self.prev_nonempty = ""
        self.others: list[MetricLine] = []

    # -- embedded source capture -------------------------------------------------------------------------------
    def _keep_source(self, parts: list[str], line: str) -> bool:
        if self.source_chars + len(line) > MAX_SOURCE_CHARS:
            self.run.source_truncated = True
            return False
        parts.append(line)
        self.source_chars += len(line)
        return True

    def _on_separator(self) -> None:
        run = self.run
        if self.seen_separator and self.mode == "normal" and self.block_lines:
            # A later run's dump follows the previous run's last lines: it starts at the first line that can
            # open a Python file (a docstring, an import, a shebang).
            start = next((i for i, text in enumerate(self.block_lines) if _SOURCE_START.match(text)), None)
            if start is not None and len(self.block_lines) - start >= LATER_DUMP_MIN_LINES:
                text = "".join(self.block_lines[start:])
                if _LOOKS_LIKE_SOURCE.search(text):
                    run.later_sources.append((text, self.block_start + start))
        self.block_lines, self.block_chars, self.block_start = [], 0, self.lineno + 1
        if self.mode == "source":
            run.embedded_source = "".join(self.source_parts)
            self.source_parts = []
            self.mode = "normal"
            return
        if self.mode == "await_source":
            self.mode = "source"
            run.embedded_source_line = self.lineno + 1
            self.source_chars = 0
            return
        if not self.seen_separator:
            self.seen_separator = True
            text = "".join(self.pre_lines)
            self.pre_lines = []
            if re.search(r"(?m)^(?:import |from \S+ import |def |class )", text):
                # Baseline dialect: the script dumps its own source before the first separator. Anything parsed
                # from it (f-string examples, comments) is not a run fact: start over with a fresh state.
                fresh = LogRun(path=run.path)
                fresh.embedded_source = text
                fresh.embedded_source_line = self.pre_start
                fresh.source_truncated = run.source_truncated
                self.run = fresh
                self.others = []
        if self.mode == "hyper":
            self.mode = "normal"

    # -- main entry ---------------------------------------------------------------------------------------------
    def feed(self, raw: str) -> None:
        self.lineno += 1
        line = strip_prefix(raw.rstrip("\r\n"))
        stripped = line.strip()
        if stripped == SEPARATOR:
            self._on_separator()
            self.prev_nonempty = SEPARATOR
            return
        if self.mode == "source":
            self._keep_source(self.source_parts, line + "\n")
            return
        if self.seen_separator and self.mode == "normal":
            if self.block_chars + len(line) < MAX_SOURCE_CHARS:
                self.block_lines.append(line + "\n")
                self.block_chars += len(line) + 1
            else:
                self.block_lines = []  # too long to be a dump of the script: stop buffering this block
        if not self.seen_separator and self.pre_chars < MAX_SOURCE_CHARS:
            self.pre_lines.append(line + "\n")
            self.pre_chars += len(line) + 1
            if self.pre_chars >= MAX_SOURCE_CHARS:
                self.run.source_truncated = True
        if self.mode == "await_source" and stripped:
            self.mode = "normal"
        if stripped == "Source code:" and self.prev_nonempty == SEPARATOR:
            self.mode = "await_source"
            return
        self.prev_nonempty = stripped if stripped else self.prev_nonempty
        if self.mode == "hyper":
            m = HYPER_ITEM.match(line)
            if m and line[:1].isspace():
                read_hyper(self.run, m.group(1), m.group(2))
                return
            self.mode = "normal"
        if stripped == "Hyperparameters:":
            self.mode = "hyper"
            self.run.line_of.setdefault("hyperparameters", self.lineno)
            return
        if stripped:
            if len(self.run.output_lines) < MAX_OUTPUT_LINES and not is_source_like(stripped):
                self.run.output_lines.append(stripped)
            low = stripped.lower()
            if ("bpb" in low or "score" in low) and len(self.run.bpb_figures) < MAX_BPB_FIGURES:
                self.run.bpb_figures.extend((self.lineno, k, v) for k, v in BPB_FIGURE.findall(stripped))
            if "val_loss" in stripped and "val_bpb" in stripped:
                self._metric(stripped)
            read_line(self.run, stripped, self.lineno)

    def _metric(self, s: str) -> None:
        parsed = read_metric(s)
        if parsed is None:
            return
        fields, kind = parsed
        metric = MetricLine(line=self.lineno, text=s, **fields)
        if len(self.run.metrics) < MAX_METRIC_LINES:
            self.run.metrics.append(metric)
            if kind == "other":
                self.others.append(metric)
            self.run.line_of[metric.tag] = self.lineno

    def finish(self) -> LogRun:
        run = self.run
        if self.mode == "source" and self.source_parts:
            run.embedded_source = "".join(self.source_parts)
        run.n_lines = self.lineno
        m = _SEED_IN_NAME.search(Path(run.path).name)
        name_seed = next(g for g in m.groups() if g is not None) if m else None
        if not run.seed and name_seed is not None:
            run.seed, run.seed_source = name_seed, "file name"
        elif name_seed is not None and run.seed is not None and int(name_seed) != int(run.seed):
            run.anomalies.append(f"file name says seed {name_seed} but the log prints seed {run.seed}")
        run.final = _choose_final(run, {id(m) for m in self.others})
        if run.total_eval_time_s is not None:
            run.eval_time_s = run.total_eval_time_s
        elif run.final is not None and run.final.eval_time_ms is not None:
            run.eval_time_s = run.final.eval_time_ms / 1000.0
        for m in run.metrics:
            for feature in ("legal_ttt", "ttt_phased", "ttt_lora", "ttt_sliding"):
                if feature in m.tag:
                    run.tags.add(feature)
        return run


def with_twin_eval_time(metrics: list[MetricLine], line: MetricLine) -> MetricLine:
    """An `_exact` line without an eval_time, given the time of its rounded twin (the nearest one printed)."""
    if line.eval_time_ms is not None:
        return line
    twin = min((m for m in metrics if m.tag + "_exact" == line.tag and m.eval_time_ms),
               key=lambda m: abs(m.line - line.line), default=None)
    return line if twin is None else dataclasses.replace(line, eval_time_ms=twin.eval_time_ms)


def _choose_final(run: LogRun, other_ids: set[int]) -> MetricLine | None:
    """Last known-final score line; an unknown tag only when no known one exists; `_exact` twin preferred."""
    scores = [m for m in run.metrics if m.kind == "score"]
    known = [m for m in scores if id(m) not in other_ids]
    pool = known or scores
    if not pool:
        return None
    final = pool[-1]
    # A rounded copy printed after its `_exact` twin: keep the exact value, borrow the copy's eval_time.
    for m in reversed(pool[:-1]):
        if m.tag == final.tag + "_exact" or final.tag == m.tag + "_exact" or m.tag == final.tag:
            if len(m.val_bpb_text) > len(final.val_bpb_text) and _same_at(final, m):
                final = dataclasses.replace(m, eval_time_ms=m.eval_time_ms or final.eval_time_ms)
            break
    final = with_twin_eval_time(pool, final)
    best = min((m for m in pool if m.val_bpb == m.val_bpb), key=lambda m: m.val_bpb, default=None)
    if best is not None and final.val_bpb == final.val_bpb and final.val_bpb - best.val_bpb > DIVERGED_BPB_GAP:
        run.anomalies.append(
            f"last score line {final.tag} (line {final.line}) is {final.val_bpb:.5f}, far worse than "
            f"{best.tag} (line {best.line}) at {best.val_bpb:.5f}: the later evaluation may have diverged")
    if final.val_bpb != final.val_bpb:
        run.anomalies.append(f"final score line {final.tag} (line {final.line}) is not a number")
    return final


def _same_at(rounded: MetricLine, exact: MetricLine) -> bool:
    decimals = len(rounded.val_bpb_text.split(".")[1]) if "." in rounded.val_bpb_text else 0
    return abs(round(exact.val_bpb, decimals) - rounded.val_bpb) <= 10 ** (-decimals)


def parse_lines(lines: Iterable[str], path: str, first_line: int = 1) -> LogRun:
    """Parse an iterable of lines (a file object streams); never raises on odd text. FIRST_LINE: the file line
    number of the first line (a part of a file keeps the file's numbering)."""
    parser = _Parser(path, first_line)
    for raw in lines:
        parser.feed(raw)
    return parser.finish()


def parse_log(text: str, path: str) -> LogRun:
    """Parse one log's text. Pure: no I/O. `path` is the log's path relative to the submission folder."""
    return parse_lines(io.StringIO(text, newline=None), path)


# Several runs in one file (a launcher looping over seeds into one log): the file's final tag is printed once per
# run, every run prints the same progress-line template many times, and every later run opens by printing again
# some of the lines the first one opened with (its banner, settings, set-up). All three must hold for a split: one
# run that prints its final tag after each of several passes repeats progress lines, but not its opening.
MIN_RUN_TEMPLATE_LINES = 20  # a progress template (digits aside) printed at least this often in every part
OPENING_LINES = 60  # a run's opening: its first this many lines with words (banners, settings, set-up) ...
MIN_REPEATED_OPENING = 3  # ... of which every later run prints at least this many again (a new run starts)
MAX_SPLIT_BYTES = 64_000_000  # larger files are read as one run (a split re-reads the file)
_DIGITS = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


def _template(line: str) -> str:
    """A line with its numbers and runs of white space made uniform: what a progress line prints every time."""
    return " ".join(_DIGITS.sub("#", line).split())


def _template_counts(lines: list[str]) -> Counter:
    return Counter(_template(line) for line in lines if _DIGITS.search(line))


def _final_lines(run: LogRun) -> list[int]:
    """The lines of RUN's final tag when it is printed more than once with different values (maybe several runs);
    [] otherwise."""
    if run.final is None:
        return []
    finals = [m for m in run.metrics if m.kind == "score" and m.tag == run.final.tag]
    return [m.line for m in finals] if len({m.val_bpb_text for m in finals}) >= 2 else []


def split_runs(text: str, run: LogRun) -> list[LogRun]:
    """RUN (the whole file parsed as one) as the complete runs it holds, each parsed alone with the file's line
    numbers, when its final tag is printed once per run and each part repeats a training-progress template;
    [RUN] otherwise."""
    ends = _final_lines(run)
    if not ends:
        return [run]
    lines = text.splitlines()
    bounds = [0, *ends[:-1], len(lines)]  # each part ends at its own final line; the last one at the file's end
    parts = [lines[a:b] for a, b in pairwise(bounds)]
    shared = None
    for part in parts:
        common = {t for t, n in _template_counts(part).items() if n >= MIN_RUN_TEMPLATE_LINES}
        shared = common if shared is None else shared & common
    worded = [_template(line) for line in parts[0] if re.search(r"[A-Za-z]{3}", line)]
    opening = set(list(dict.fromkeys(worded))[:OPENING_LINES])
    later = [{_template(line) for line in part} & opening for part in parts[1:]]
    if not shared or any(len(found) < MIN_REPEATED_OPENING for found in later):
        return [run]
    runs = []
    for k, (start, part) in enumerate(zip(bounds, parts), 1):
        piece = parse_lines(part, run.path, first_line=start + 1)
        piece.part = (k, len(parts))
        if piece.final is None:
            return [run]
        runs.append(piece)
    seeds = [r.seed for r in runs if r.seed is not None]
    if len(seeds) != len(set(seeds)):  # the same seed twice: one run re-evaluated, not several runs
        return [run]
    return runs


def load_logs(sub) -> list[LogRun]:
    """Parse every log of a Submission (streamed from disk, undecodable bytes replaced); unreadable files skipped.
    A file holding several complete runs gives one LogRun per run (`split_runs`)."""
    runs: list[LogRun] = []
    for rel in sub.logs:
        full = sub.abs(rel)
        try:
            with open(full, encoding="utf-8", errors="replace", newline=None) as fh:
                run = parse_lines(fh, sub.display(rel))
            if _final_lines(run) and full.stat().st_size <= MAX_SPLIT_BYTES:  # re-read only a possible split
                runs.extend(split_runs(full.read_text(encoding="utf-8", errors="replace"), run))
            else:
                runs.append(run)
        except OSError as exc:
            run = LogRun(path=sub.display(rel))
            run.anomalies.append(f"could not read the log: {exc.strerror or exc}")
            runs.append(run)
    return runs

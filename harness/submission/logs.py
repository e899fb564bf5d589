"""Read training logs: one `LogRun` per log file, with the final score, sizes, timings and run facts.

Logs come in many dialects (baseline `step:` lines, hyperparameter dumps, Unix-time prefixes, TTT lines, wrapper
code sizes). The parser is a single pass over lines, so a 100 MB log costs bounded memory: the embedded source dump
is kept only up to `MAX_SOURCE_CHARS`, and nothing else grows with the log except the list of metric lines.

Choosing the final score: every line with `val_loss` and `val_bpb` is a metric line; step lines and diagnostics
(pre-quantization, `diagnostic ...`) are never final. Among the rest, the last line with a known final tag wins
(an `_exact` twin just before a rounded copy wins over the copy). Tag names are not trusted blindly: when the last
score is far worse than an earlier score in the same log, the run records an anomaly so that claim checks can
explain a claim that matches the earlier line (2026-04-04_SP4096 ends with a diverged TTT line).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

MAX_SOURCE_CHARS = 2_000_000  # cap on the embedded source kept per log (bounded memory on huge logs)
MAX_METRIC_LINES = 200_000  # a log with more metric lines than this is not a training log; stop collecting
SEPARATOR = "=" * 100
LATER_DUMP_MIN_LINES = 20  # a block between separators shorter than this is a banner, not a script
_SOURCE_START = re.compile(r'(?:"""|\'\'\'|import \w|from [\w.]+ import |#!)')
_LOOKS_LIKE_SOURCE = re.compile(r"(?m)^(?:import \w|from [\w.]+ import |def \w+\(|class \w+)")
DIVERGED_BPB_GAP = 0.05  # last score this much worse than an earlier score in the same log: flag it

_NUM = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)"
_UNIX_PREFIX = re.compile(r"^\d{9,11}(?:\.\d+)? ")
_VAL_LOSS = re.compile(r"\bval_loss[:=]\s*" + _NUM)
_VAL_BPB = re.compile(r"\bval_bpb[:=]\s*" + _NUM)
_EVAL_TIME = re.compile(r"\beval_time[:=]\s*(\d+(?:\.\d+)?)\s*(ms|s)\b")
_STEP_LABEL = re.compile(r"^(?:step[:\s]*)?(\d+)\s*/\s*(\d+)\b")
_KEYVAL_TOKEN = re.compile(r"^[\w.\-]+[:=]\S*$")
_TRAIN_TIME = re.compile(r"\btrain_time[:=]\s*(\d+(?:\.\d+)?)\s*(ms|m|s)\b")
_STEP_ANY = re.compile(r"^(?:step[:\s]*)?(\d+)\s*/\s*(\d+)\s")
_STOPPING = re.compile(r"stopping_early:.*?train_time[:=]\s*(\d+(?:\.\d+)?)\s*ms(?:.*?step[:=]\s*(\d+)/(\d+))?")
_TOTAL_EVAL = re.compile(r"total_eval_time[:=]\s*(\d+(?:\.\d+)?)\s*s\b")
_SIZE = re.compile(r"^(Total submission size|Serialized model|Code size)\s*(.*?):\s*(\d+)\s*bytes")
_VAL_TOKENS = re.compile(r"(?:val_loader:.*\btokens:\s*|^val_tokens[:=]\s*)(\d+)")
_TRAIN_SHARDS = re.compile(r"\btrain_shards[:=]\s*(\d+)")
_WORLD_SIZE = re.compile(r"\bworld_size[:=]\s*(\d+)")
_SEED_LINE = re.compile(r"^seed[:=]\s*(\d+)\s*$", re.IGNORECASE)
_GPTQ_COLLECTED = re.compile(r"(?i)gptq:\s*(?:collected|calibrated)\b.*?\bin\s+(\d+(?:\.\d+)?)\s*s\b")
_GPTQ_RESERVE = re.compile(r"(?i)gptq:reserving\s+(\d+(?:\.\d+)?)\s*(ms|s)\b")
_PREQUANT_DONE = re.compile(r"prequant_ttt\S*:?\s*done.*?(?:total_time|elapsed|time)[:=]\s*(\d+(?:\.\d+)?)\s*s")
_NVIDIA_ROW = re.compile(r"^\|\s+(\d+)\s+(\S.*?)\s{2,}(?:On|Off)\s+\|")
_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s*(.+?)\s*(?:\(UUID.*)?$")
_DATASET_DECL = re.compile(r"^dataset:(\S+)\s+fineweb:([01])\b")
_DATASET_PATH = re.compile(r"^(?:train_loader:dataset:|datasets_dir[:=]\s*|data_path[:=]\s*|train_files[:=]\s*)(\S+)")
_TOKENIZER_PATH = re.compile(r"\btokenizer_path[:=]\s*(\S+)")
_SEQ_LEN = re.compile(r"\b(?:eval_seq_len|train_seq_len)[:=]\s*(\d+)")
_VAL_PATTERN = re.compile(r"val_loader:shards pattern=(\S+)")
_SEED_IN_NAME = re.compile(r"(?i)seed[_\-]?(\d+)|_s(\d+)(?=[._])|log_(\d+)(?=\.)")
_HYPER_ITEM = re.compile(r"^\s+([\w.\-]+):\s*(.*?)\s*$")

# Final-score tags seen across the records; regexes on the tag (first words of the label, key:value tokens removed).
FINAL_TAG_PATTERNS = (
    r"final_\w+",  # final_int8_zlib_roundtrip(_exact), final_int6_sliding_window(_exact), final_sliding, ...
    r"legal_ttt(_exact)?",
    r"quantized(_\w+)?",  # quantized, quantized_sliding_window, quantized_ttt, quantized_ttt_lora, _phased
    r"ttt_sliding:done",
    r"\w*ttt\w*(_exact)?",
    r"\w*_roundtrip(_exact)?",
    r"\w*slot\w*",  # SLOT scorers (slot_exact)
    r"\w*ngram\w*|\w*dyneval\w*",
    r"\w+_exact",  # any other `<name>_exact` line is a score printed at full precision
)
_FINAL_TAG = re.compile("^(?:" + "|".join(FINAL_TAG_PATTERNS) + ")$")
_DIAGNOSTIC_TAG = re.compile(r"(?i)diagnostic|pre[-_ ]?quant|post[-_ ]?ema(?!.*quant)|^val$|^eval$|baseline|^ema\b")
_LINE_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]{1,40}):\S")
_MAX_TAGS = 500  # a hostile log cannot grow the tag set without bound
_FEATURE_MARKERS = {
    "prequant_ttt": "prequant_ttt",
    "legal_ttt": "legal_ttt",
    "ttt_sliding": "ttt_sliding",
    "ttt_phased": "ttt_phased",
    "ttt_lora": "ttt_lora",
    "caseops_enabled": "caseops",
    "byte_sidecar": "byte_sidecar",
    "ema:applying": "ema",
    "force_stop_step": "force_stop",
    "beginning TTT eval timer": "ttt_eval_timer",
    "slot": "slot",
}


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
    tags: set[str] = field(default_factory=set)
    line_of: dict[str, int] = field(default_factory=dict)
    dataset_name: str | None = None  # from `dataset:<name> fineweb:<0|1>` (our reference trainer)
    dataset_is_fineweb: bool | None = None
    dataset_paths: list[str] = field(default_factory=list)
    tokenizer_path: str | None = None
    seq_len: int | None = None  # the longest train/eval sequence length printed (val token truncation unit)
    anomalies: list[str] = field(default_factory=list)
    n_lines: int = 0

    @property
    def is_run_log(self) -> bool:
        """True when the file shows a training or evaluation run (metric or step lines), not e.g. a pip freeze."""
        return bool(self.metrics) or self.train_time_ms is not None or self.last_step is not None

    def score_lines(self) -> list[MetricLine]:
        return [m for m in self.metrics if m.kind == "score"]


def _strip_prefix(line: str) -> str:
    return _UNIX_PREFIX.sub("", line, count=1)


def _tag_of(label: str) -> str:
    """The label without trailing `key:value` tokens: `final_sliding_window_eval_exact stride:64` -> first word."""
    words = [w for w in label.split() if w]
    kept: list[str] = []
    for w in words:
        if kept and _KEYVAL_TOKEN.match(w):
            break
        kept.append(w.rstrip(":,"))
    return " ".join(kept)


def _classify(tag: str) -> str:
    if _STEP_LABEL.match(tag):
        return "step"
    if _DIAGNOSTIC_TAG.search(tag):
        return "diagnostic"
    first = tag.split()[0] if tag else ""
    if _FINAL_TAG.match(first):
        return "score"
    return "other"


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


class _Parser:
    """Line-by-line state machine; `feed` one line at a time, then `finish`."""

    def __init__(self, path: str):
        self.run = LogRun(path=path)
        self.lineno = 0
        self.seen_separator = False
        self.pre_lines: list[str] = []  # text before the first separator: maybe an embedded source dump
        self.pre_chars = 0
        self.pre_start = 1
        self.block_lines: list[str] = []  # lines since the last separator (after the first): maybe a later dump
        self.block_chars = 0
        self.block_start = 1
        self.mode = "normal"  # normal | hyper | await_source | source
        self.source_parts: list[str] = []
        self.source_chars = 0
        self.prev_nonempty = ""
        self.others: list[MetricLine] = []
        self.pending_reset_line: int | None = None

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
        line = _strip_prefix(raw.rstrip("\r\n"))
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
            m = _HYPER_ITEM.match(line)
            if m and line[:1].isspace():
                self._hyper(m.group(1), m.group(2))
                return
            self.mode = "normal"
        if stripped == "Hyperparameters:":
            self.mode = "hyper"
            self.run.line_of.setdefault("hyperparameters", self.lineno)
            return
        if stripped:
            self._line(stripped)

    def _hyper(self, key: str, value: str) -> None:
        run = self.run
        run.hyperparameters[key] = value
        low = key.lower()
        number = value.split()[0] if value.split() else ""
        if low == "seed" and number.lstrip("-").isdigit():
            run.seed, run.seed_source = number, "hyperparameters"
        elif low == "world_size" and number.isdigit():
            run.world_size = int(number)
        elif low == "max_wallclock_seconds":
            run.max_wallclock_seconds = _to_float(number)
        elif low == "gptq_reserve_seconds" and run.gptq_reserve_s is None:
            run.gptq_reserve_s = _to_float(number)
        elif low == "force_stop_step" and number not in ("", "0", "None", "none"):
            run.tags.add("force_stop")
        elif low in ("datasets_dir", "data_path", "train_files", "val_files"):
            run.dataset_paths.append(value)
        elif low == "tokenizer_path":
            run.tokenizer_path = value
        elif low in ("train_seq_len", "eval_seq_len") and number.isdigit():
            run.seq_len = max(run.seq_len or 0, int(number))
        elif low == "train_shards" and number.isdigit():
            run.train_shards = int(number)

    def _line(self, s: str) -> None:
        run = self.run
        n = self.lineno
        if "val_loss" in s and "val_bpb" in s:
            self._metric(s)
        if "train_time" in s:
            m = _STEP_ANY.match(s)
            t = _TRAIN_TIME.search(s)
            if m and t:
                run.last_step, run.iterations = int(m.group(1)), int(m.group(2))
                if not run.stopped_early:
                    run.train_time_ms = _ms(t.group(1), t.group(2))
            if s.startswith("stopping_early"):
                st = _STOPPING.search(s)
                run.stopped_early = True
                run.line_of["stopping_early"] = n
                if st:
                    run.train_time_ms = float(st.group(1))
                    if st.group(2):
                        run.last_step, run.iterations = int(st.group(2)), int(st.group(3))
        if "total_eval_time" in s and (m := _TOTAL_EVAL.search(s)):
            run.total_eval_time_s = float(m.group(1))
            run.line_of["total_eval_time"] = n
        if "bytes" in s and (m := _SIZE.match(s)):
            self._size(m.group(1), m.group(2).strip(), int(m.group(3)))
        if "tokens" in s and (m := _VAL_TOKENS.search(s)):
            run.val_tokens = int(m.group(1))
            run.line_of["val_tokens"] = n
        if "train_shards" in s and (m := _TRAIN_SHARDS.search(s)):
            run.train_shards = int(m.group(1))
            run.line_of["train_shards"] = n
        if "world_size" in s and (m := _WORLD_SIZE.search(s)):
            run.world_size = int(m.group(1))
            run.line_of["world_size"] = n
        low = s.lower()
        if low.startswith("seed") and (m := _SEED_LINE.match(s)):
            run.seed, run.seed_source = m.group(1), "line"
        if "gptq" in low:
            if m := _GPTQ_COLLECTED.search(s):
                run.hessian_time_s = float(m.group(1))
                run.line_of["gptq_collected"] = n
            if m := _GPTQ_RESERVE.search(s):
                run.gptq_reserve_s = _ms(m.group(1), m.group(2)) / 1000.0
                run.line_of["gptq_reserve"] = n
        if "max_wallclock_seconds:" in s and (m := re.search(r"max_wallclock_seconds:\s*" + _NUM, s)):
            run.max_wallclock_seconds = _to_float(m.group(1))
        if "prequant" in low and (m := _PREQUANT_DONE.search(s)):
            run.prequant_ttt_s = float(m.group(1))
            run.line_of["prequant_ttt"] = n
        if s.startswith("|") and (m := _NVIDIA_ROW.match(s)):
            self._gpu(int(m.group(1)), m.group(2))
        elif s.startswith("GPU ") and (m := _GPU_LINE.match(s)):
            self._gpu(int(m.group(1)), m.group(2))
        if s.startswith("dataset:") and (m := _DATASET_DECL.match(s)):
            run.dataset_name, run.dataset_is_fineweb = m.group(1), m.group(2) == "1"
            run.line_of["dataset"] = n
        if (m := _DATASET_PATH.match(s)) is not None:
            run.dataset_paths.append(m.group(1))
        if "tokenizer_path" in s and (m := _TOKENIZER_PATH.search(s)):
            run.tokenizer_path = m.group(1)
        if "seq_len" in s:
            for m in _SEQ_LEN.finditer(s):
                run.seq_len = max(run.seq_len or 0, int(m.group(1)))
        if s.startswith("val_loader") and (m := _VAL_PATTERN.search(s)):
            run.dataset_paths.append(m.group(1))
        for marker, tag in _FEATURE_MARKERS.items():
            if marker in low:
                run.tags.add(tag)
                run.line_of.setdefault(tag, n)
        # The key of a `key:value` line names the phase that printed it (`ttt:start`, `prequant_ttt:done`,
        # `ttt_epoch:1/3`): static rules use it to tell whether a flag-guarded path actually ran.
        if (m := _LINE_KEY.match(s)) is not None and len(run.tags) < _MAX_TAGS:
            key = m.group(1).lower()
            run.tags.add(key)
            run.line_of.setdefault(key, n)

    def _gpu(self, index: int, name: str) -> None:
        names = self.run.gpu_names
        if index == len(names):
            names.append(name.strip())

    def _size(self, kind: str, label: str, value: int) -> None:
        run = self.run
        key = {"Total submission size": "total", "Serialized model": "model", "Code size": "code"}[kind]
        run.line_of[f"{key}:{label}" if label else key] = self.lineno
        if key == "total":
            if label:
                run.total_size_bytes = value
                run.line_of["total_size"] = self.lineno
            else:
                run.total_size_raw_bytes = value
        elif key == "model":
            if label:
                run.model_bytes = value
            else:
                run.raw_model_bytes = value
        elif "compressed" in label and "uncompressed" not in label:
            run.code_size_compressed_bytes = value
            run.line_of["code_size_compressed"] = self.lineno
        else:
            run.code_size_bytes = value
            run.line_of["code_size"] = self.lineno

    def _metric(self, s: str) -> None:
        loss = _VAL_LOSS.search(s)
        bpb = _VAL_BPB.search(s)
        if not bpb or not loss or loss.start() > bpb.start() + 200:
            return
        label = s[: min(loss.start(), bpb.start())].strip()
        tag = _tag_of(label)
        kind = _classify(tag)
        step = None
        if kind == "step":
            step = int(_STEP_LABEL.match(tag).group(1))
        et = _EVAL_TIME.search(s)
        metric = MetricLine(
            tag=tag or "(untagged)",
            val_loss=_to_float(loss.group(1)),
            val_bpb=_to_float(bpb.group(1)),
            line=self.lineno,
            eval_time_ms=_ms(et.group(1), et.group(2)) if et else None,
            kind="score" if kind in ("score", "other") else kind,
            val_bpb_text=bpb.group(1),
            val_loss_text=loss.group(1),
            step=step,
        )
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


def _ms(value: str, unit: str) -> float:
    v = float(value)
    return {"ms": v, "s": v * 1000.0, "m": v * 60_000.0}[unit]


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
                final = MetricLine(m.tag, m.val_loss, m.val_bpb, m.line, m.eval_time_ms or final.eval_time_ms,
                                   m.kind, m.val_bpb_text, m.val_loss_text, m.step)
            break
    if final.eval_time_ms is None:
        twin = next((m for m in reversed(pool) if m.tag + "_exact" == final.tag and m.eval_time_ms), None)
        if twin is not None:
            final = MetricLine(final.tag, final.val_loss, final.val_bpb, final.line, twin.eval_time_ms,
                               final.kind, final.val_bpb_text, final.val_loss_text, final.step)
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


def parse_lines(lines: Iterable[str], path: str) -> LogRun:
    """Parse an iterable of lines (a file object streams); never raises on odd text."""
    parser = _Parser(path)
    for raw in lines:
        parser.feed(raw)
    return parser.finish()


def parse_log(text: str, path: str) -> LogRun:
    """Parse one log's text. Pure: no I/O. `path` is the log's path relative to the submission folder."""
    return parse_lines(io.StringIO(text, newline=None), path)


def load_logs(sub) -> list[LogRun]:
    """Parse every log of a Submission (streamed from disk, undecodable bytes replaced); unreadable files skipped."""
    runs: list[LogRun] = []
    for rel in sub.logs:
        full = sub.abs(rel)
        try:
            with open(full, encoding="utf-8", errors="replace", newline=None) as fh:
                runs.append(parse_lines(fh, sub.display(rel)))
        except OSError as exc:
            run = LogRun(path=sub.display(rel))
            run.anomalies.append(f"could not read the log: {exc.strerror or exc}")
            runs.append(run)
    return runs


def run_logs(logs: list[LogRun]) -> list[LogRun]:
    """The logs that show a run (a pip freeze or a notes file yields no metrics and is ignored downstream)."""
    return [r for r in logs if r.is_run_log]

"""The line grammar of training logs: the patterns of every fact a log line can carry and what each line sets.

`harness.submission.logs` runs the state machine over a log (separators, source dumps, the hyperparameter block)
and hands each ordinary line here: `read_line` records the run facts it prints (times, sizes, token counts, GPUs,
dataset paths, phase tags) on the run, `read_metric` reads a `val_loss`/`val_bpb` line and classifies its tag
(final score, in-training step, diagnostic), and `read_hyper` reads one `key: value` item of a hyperparameter dump.
The `run` these functions write to is a `harness.submission.logs.LogRun`.
"""

from __future__ import annotations

import re

_NUM = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)"
_UNIX_PREFIX = re.compile(r"^\d{9,11}(?:\.\d+)? ")
# `(?<!\{)`: `{val_bpb:.4f}` is a format field of a template (a source line dumped into the log), not a reading
_VAL_LOSS = re.compile(r"(?<!\{)\bval_loss[:=]\s*" + _NUM)
_VAL_BPB = re.compile(r"(?<!\{)\bval_bpb[:=]\s*" + _NUM)
_EVAL_TIME = re.compile(r"\beval_time[:=]\s*(\d+(?:\.\d+)?)\s*(ms|s)\b")
_STEP_LABEL = re.compile(r"^(?:step[:\s]*)?(\d+)\s*/\s*(\d+)\b")
_KEYVAL_TOKEN = re.compile(r"^[\w.\-]+[:=]\S*$")
_TRAIN_TIME = re.compile(r"\btrain_time[:=]\s*(\d+(?:\.\d+)?)\s*(ms|m|s)\b")
_STEP_ANY = re.compile(r"^(?:step[:\s]*)?(\d+)\s*/\s*(\d+)\s")
_STOPPING = re.compile(r"stopping_early:.*?train_time[:=]\s*(\d+(?:\.\d+)?)\s*ms(?:.*?step[:=]\s*(\d+)/(\d+))?")
_TOTAL_EVAL = re.compile(r"total_eval_time[:=]\s*(\d+(?:\.\d+)?)\s*s\b")
_SIZE = re.compile(r"^(Total submission size|Serialized model|Code size)\s*(.*?):\s*(\d+)\s*bytes")
_VAL_TOKENS = re.compile(r"(?:val_loader:.*\btokens:\s*|^val_tokens[:=]\s*)(\d{1,3}(?:,\d{3})+(?!\d)|\d+)")
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
HYPER_ITEM = re.compile(r"^\s+([\w.\-]+):\s*(.*?)\s*$")

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
    "beginning ttt eval timer": "ttt_eval_timer",  # matched against the lowercased line
    "slot": "slot",
}


# A marker is a whole key (`ttt_lora:` or `ttt_lora ...`), not the start of another one (`"ttt_lora_lr": 0.01`).
_MARKER_RE = {m: re.compile(rf"(?<![a-z0-9_]){re.escape(m)}(?![a-z0-9_])") for m in _FEATURE_MARKERS}


_SOURCE_LIKE = re.compile(r"os\.environ|^\s*(?:def|class|import|from|if|elif|for|while|return)\b|^\s*#|\s=\s|\w\(.*\)\s*$")
MAX_OUTPUT_LINES = 20_000  # output lines kept per log for the static rules' printed-line evidence


def is_source_like(line: str) -> bool:
    """Does LINE look like a line of Python (a source dump), rather than something a run printed?"""
    return bool(_SOURCE_LIKE.search(line))


_SETTING = re.compile(r"(?<![\w.])([A-Za-z][A-Za-z0-9_]{1,40})[=:]([^\s,=:]+)")
_OFF = re.compile(r"\s*[:=]\s*(?:0|false|off|none|disabled?)\b")


def _says_off(low: str, marker: str) -> bool:
    """`slot_enabled=False`, `prequant_ttt: disabled`: the line names the feature to say it is off."""
    for at in (i for i in range(len(low)) if low.startswith(marker, i)):
        tail = low[at + len(marker):]
        word_end = len(tail) - len(tail.lstrip("abcdefghijklmnopqrstuvwxyz0123456789_"))
        if _OFF.match(tail[word_end:]):
            return True
    return False


def strip_prefix(line: str) -> str:
    """LINE without a leading Unix-time stamp (`1712345678.12 step:...`)."""
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


def _ms(value: str, unit: str) -> float:
    v = float(value)
    return {"ms": v, "s": v * 1000.0, "m": v * 60_000.0}[unit]


def read_hyper(run, key: str, value: str) -> None:
    """One `key: value` item of a hyperparameter dump."""
    run.hyperparameters[key] = value
    run.dumped_settings.append(key)
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


def read_metric(s: str) -> tuple[dict, str] | None:
    """The fields of the MetricLine a `val_loss ... val_bpb` line S prints (all but `line`) and its tag's class
    ("score", "other", "step" or "diagnostic"); None when the two numbers are not one measurement."""
    loss = _VAL_LOSS.search(s)
    bpb = _VAL_BPB.search(s)
    if not bpb or not loss or loss.start() > bpb.start() + 200:
        return None
    label = s[: min(loss.start(), bpb.start())].strip()
    tag = _tag_of(label)
    kind = _classify(tag)
    step = None
    if kind == "step":
        step = int(_STEP_LABEL.match(tag).group(1))
    et = _EVAL_TIME.search(s)
    fields = dict(
        tag=tag or "(untagged)",
        val_loss=_to_float(loss.group(1)),
        val_bpb=_to_float(bpb.group(1)),
        eval_time_ms=_ms(et.group(1), et.group(2)) if et else None,
        kind="score" if kind in ("score", "other") else kind,
        val_bpb_text=bpb.group(1),
        val_loss_text=loss.group(1),
        step=step,
    )
    return fields, kind


def read_line(run, s: str, n: int) -> None:
    """The run facts line N (S, stripped, not a metric reading) prints, recorded on RUN."""
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
        _size(run, m.group(1), m.group(2).strip(), int(m.group(3)), n)
    if "tokens" in s and (m := _VAL_TOKENS.search(s)):
        run.val_tokens = int(m.group(1).replace(",", ""))  # `62,021,632` or `62021632`
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
        _gpu(run, int(m.group(1)), m.group(2))
    elif s.startswith("GPU ") and (m := _GPU_LINE.match(s)):
        _gpu(run, int(m.group(1)), m.group(2))
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
    source_like = bool(_SOURCE_LIKE.search(s))  # a line of Python (a source dump) says what could run, not what ran
    pairs = _SETTING.findall(s)
    if len(pairs) >= 2 and not source_like:  # a one-line settings echo: `ttt_enabled=0 slot_enabled=False ...`
        for key, value in pairs:
            run.hyperparameters.setdefault(key, value.rstrip(","))
    for marker, tag in _FEATURE_MARKERS.items():
        if marker in low and not source_like and _MARKER_RE[marker].search(low) and not _says_off(low, marker):
            run.tags.add(tag)
            run.line_of.setdefault(tag, n)
    # The key of a `key:value` line names the phase that printed it (`ttt:start`, `prequant_ttt:done`,
    # `ttt_epoch:1/3`): static rules use it to tell whether a flag-guarded path actually ran.
    if (m := _LINE_KEY.match(s)) is not None and len(run.tags) < _MAX_TAGS:
        key = m.group(1).lower()
        run.tags.add(key)
        run.line_of.setdefault(key, n)


def _gpu(run, index: int, name: str) -> None:
    names = run.gpu_names
    if index == len(names):
        names.append(name.strip())


def _size(run, kind: str, label: str, value: int, n: int) -> None:
    key = {"Total submission size": "total", "Serialized model": "model", "Code size": "code"}[kind]
    run.line_of[f"{key}:{label}" if label else key] = n
    if key == "total":
        if label:
            run.total_size_bytes = value
            run.line_of["total_size"] = n
        else:
            run.total_size_raw_bytes = value
    elif key == "model":
        if label:
            run.model_bytes = value
        else:
            run.raw_model_bytes = value
    elif "compressed" in label and "uncompressed" not in label:
        run.code_size_compressed_bytes = value
        run.line_of["code_size_compressed"] = n
    else:
        run.code_size_bytes = value
        run.line_of["code_size"] = n

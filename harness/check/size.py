"""ARTIFACT-CAP-16MB and CODE-COUNTING: code bytes + compressed model bytes <= 16,000,000 for every seed.

Recomputed independently of what the logs claim. Code bytes are every counted file as shipped (harness.submission.code);
model bytes come from the artifact file in the folder when there is one, else from each seed's log. Both the
shipped total and the logged total are reported. A run whose shipped total is over the cap but whose logged
wrapper-based total (model + logged compressed code size) is under it is a CODE-COUNTING warning ("cap decided by
wrapper accounting"; an error under --strict-size); both over is an ARTIFACT-CAP-16MB error. Code that runs but
that the logs do not count (sibling modules, native sources) is a CODE-COUNTING warning and is always added.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.challenge import ARTIFACT_CAP_BYTES, SHARD_MAGIC
from harness.submission.code import CodeBundle
from harness.submission.folder import Submission
from harness.verdict import Report
from rules.finding import Evidence, Finding

ARTIFACT_SUFFIXES = (".ptz", ".pt", ".bin", ".brotli", ".br", ".xz", ".lzma", ".zst", ".zstd", ".gz", ".bz2",
                     ".int8", ".int6", ".npz")
MIN_ARTIFACT_BYTES = 1024  # smaller files are not a model blob
PROBE_OUTPUT_BYTES = 2 << 20  # decompress at most this much of an artifact to recognise it
PROBE_CHUNK = 4096  # small input steps so that a high ratio is measurable before the output cap
MAX_RATIO = 200  # weights never compress this well; a higher ratio means a decompression bomb


@dataclass
class Artifact:
    """The model blob found in the folder: path, size, recognised format, and any problem found probing it."""

    path: str
    bytes: int
    format: str
    problem: str | None = None


def find_artifact(sub: Submission) -> Artifact | None:
    """The most plausible model blob in the folder (by content, then name), or None."""
    candidates: list[tuple[int, Artifact]] = []
    for rel in sub.files:
        if rel.suffix.lower() not in ARTIFACT_SUFFIXES and not rel.name.startswith("final_model"):
            continue
        path = sub.abs(rel)
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(1 << 16)
        except OSError:
            continue
        if size < MIN_ARTIFACT_BYTES or _is_data_shard(head):
            continue
        fmt, problem = probe_format(path, head)
        rank = (2 if rel.name.startswith("final_model") else 0) + (1 if rel.suffix == ".ptz" else 0)
        candidates.append((rank * 10**12 + size, Artifact(rel.as_posix(), size, fmt, problem)))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


def _is_data_shard(head: bytes) -> bool:
    return len(head) >= 4 and int.from_bytes(head[:4], "little") == SHARD_MAGIC


def probe_format(path: Path, head: bytes) -> tuple[str, str | None]:
    """Recognise the compression of a blob by its magic and a bounded trial decompression; flag bombs."""
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz", _probe(path, lambda: lzma.LZMADecompressor(), "xz")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd", _probe_zstd(path)
    if head.startswith(b"\x1f\x8b"):
        return "gzip", _probe(path, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), "gzip")
    if head.startswith(b"BZh"):
        return "bz2", _probe(path, lambda: bz2.BZ2Decompressor(), "bz2")
    if head.startswith(b"PK\x03\x04"):
        return "zip (torch.save)", None
    if head[:1] == b"\x5d" and head[1:5] in {b"\x00\x00\x80\x00", b"\x00\x00\x00\x04", b"\x00\x00\x00\x01"}:
        return "lzma-alone", _probe(path, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), "lzma")
    if len(head) > 1 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib", _probe(path, lambda: zlib.decompressobj(), "zlib")
    return ("brotli or raw", _probe_brotli(path))


def _probe(path: Path, make, label: str) -> str | None:
    """Decompress up to PROBE_OUTPUT_BYTES; a ratio above MAX_RATIO means the whole would be a bomb."""
    decomp = make()
    produced = consumed = 0
    try:
        with path.open("rb") as handle:
            while produced < PROBE_OUTPUT_BYTES:
                chunk = handle.read(PROBE_CHUNK)
                if not chunk:
                    break
                consumed += len(chunk)
                piece = decomp.decompress(chunk, PROBE_OUTPUT_BYTES - produced)
                produced += len(piece)
                if getattr(decomp, "eof", False):
                    break
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError) as exc:
        return f"{label} stream does not decompress: {exc}"
    return _ratio_problem(path, produced, consumed)


def _ratio_problem(path: Path, produced: int, consumed: int) -> str | None:
    if produced >= PROBE_OUTPUT_BYTES and consumed and produced / consumed > MAX_RATIO:
        estimate = path.stat().st_size * produced // consumed
        return (f"refused: decompresses at more than {MAX_RATIO}:1 ({produced:,} bytes from the first {consumed:,}), "
                f"about {estimate:,} bytes in all: a decompression bomb, not model weights")
    return None


def _probe_zstd(path: Path) -> str | None:
    import zstandard  # a declared dependency, imported here to keep `check` start-up fast

    try:
        with path.open("rb") as handle:
            reader = zstandard.ZstdDecompressor().stream_reader(handle, read_size=PROBE_CHUNK)
            produced = 0
            while produced < PROBE_OUTPUT_BYTES:
                piece = reader.read(1 << 20)
                if not piece:
                    break
                produced += len(piece)
            consumed = handle.tell()
    except zstandard.ZstdError as exc:
        return f"zstd stream does not decompress: {exc}"
    return _ratio_problem(path, produced, consumed)


def _probe_brotli(path: Path) -> str | None:
    """Brotli has no magic: try it on a prefix; failure just means 'unknown format', not a problem."""
    import brotli  # a declared dependency, imported here to keep `check` start-up fast

    decomp = brotli.Decompressor()
    produced = consumed = 0
    try:
        with path.open("rb") as handle:
            while produced < PROBE_OUTPUT_BYTES:
                if decomp.can_accept_more_data():
                    chunk = handle.read(PROBE_CHUNK)
                    if not chunk:
                        break
                    consumed += len(chunk)
                else:
                    chunk = b""
                produced += len(decomp.process(chunk, output_buffer_limit=1 << 20))
                if decomp.is_finished():
                    break
    except brotli.error:
        return None
    return _ratio_problem(path, produced, consumed)


def check_size(sub: Submission, code: CodeBundle, logs: Iterable[Any], report: Report, *,
               strict_size: bool = False) -> None:
    """Judge the cap per seed on shipped bytes, report the logged totals, and flag code the logs do not count."""
    logs = list(logs)
    artifact = find_artifact(sub)
    code_bytes = code.code_bytes
    table: dict[str, Any] = {
        "cap": ARTIFACT_CAP_BYTES,
        "code_files": dict(code.counted_files),
        "code_bytes": code_bytes,
        "artifact": None if artifact is None else {"path": artifact.path, "bytes": artifact.bytes,
                                                    "format": artifact.format, "problem": artifact.problem},
        "seeds": [],
    }
    report.facts["size"] = table
    if artifact is not None and artifact.problem:
        report.add(Finding("ARTIFACT-CAP-16MB", "warning", f"artifact {artifact.path}: {artifact.problem}",
                           file=artifact.path, source="artifact", data={"bytes": artifact.bytes}))
    if code.entry is None:
        report.skip("CODE-COUNTING", "no entry script")
        _judge_logged_totals_only(logs, report, "no shipped script to recount")
        return
    rows = _rows(logs, artifact, code)
    if not rows:
        _judge_logged_totals_only(logs, report, "no model size to recount it with")
        if "ARTIFACT-CAP-16MB" not in report.checked:
            report.skip("ARTIFACT-CAP-16MB", "no model size: no artifact file in the folder and no log with a "
                                             "'Serialized model ... bytes' line or a total")
        _uncounted_warning(code, None, report)
        report.mark_checked("CODE-COUNTING")
        return
    uncounted = _uncounted_files(code, rows)
    for row in rows:
        row["uncounted_code_bytes"] = sum(uncounted.values())
        _judge(row, code, uncounted, report, strict_size)
        table["seeds"].append(row)
    _uncounted_warning(code, uncounted, report)
    report.mark_checked("ARTIFACT-CAP-16MB", "CODE-COUNTING")


def _rows(logs: list[Any], artifact: Artifact | None, code: CodeBundle) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, dict[str, Any]] = {}
    for run in logs:
        if not getattr(run, "is_run_log", True):
            continue
        logged_model = getattr(run, "model_bytes", None)
        if artifact is not None and (logged_model is None or logged_model == artifact.bytes):
            model, source = artifact.bytes, artifact.path
        elif logged_model is not None:
            model, source = logged_model, _path(run)
        else:
            continue
        code_logged = getattr(run, "code_size_bytes", None)
        compressed = getattr(run, "code_size_compressed_bytes", None)
        total_logged = getattr(run, "total_size_bytes", None)
        if total_logged is None and logged_model is not None and (compressed or code_logged) is not None:
            total_logged = logged_model + (compressed if compressed is not None else code_logged)
        seed = None if getattr(run, "seed", None) is None else str(run.seed)
        key = (seed, model, code_logged, compressed, total_logged)
        if key in seen:  # the same run saved twice (train.log next to train_seed1337.log): one row
            seen[key]["same_run_in"].append(_path(run))
            continue
        rows.append({
            "seed": seed,
            "log": _path(run),
            "model_bytes": model,
            "model_source": source,
            "code_bytes_shipped": code.code_bytes,
            "shipped_total": model + code.code_bytes,
            "logged_code_bytes": code_logged,
            "logged_code_compressed_bytes": compressed,
            "logged_total": total_logged,
            "same_run_in": [],
        })
        seen[key] = rows[-1]
    if not rows and artifact is not None:
        rows.append({"seed": None, "log": None, "model_bytes": artifact.bytes, "model_source": artifact.path,
                     "code_bytes_shipped": code.code_bytes, "shipped_total": artifact.bytes + code.code_bytes,
                     "logged_code_bytes": None, "logged_code_compressed_bytes": None, "logged_total": None})
    return rows


def _path(run: Any) -> str | None:
    path = getattr(run, "path", None)
    return None if path is None else Path(path).as_posix()


def _uncounted_files(code: CodeBundle, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Counted files the logs' code size leaves out (all extra files when no log states a code size)."""
    extras = code.extra_files
    logged = [r["logged_code_bytes"] for r in rows if r["logged_code_bytes"] is not None]
    if not extras or (logged and min(logged) >= code.code_bytes):
        return {}
    if not logged:
        return extras
    # The log measured one file (the one whose size is nearest its figure); everything else that runs is missing.
    measured = min(code.counted_files, key=lambda p: abs(code.counted_files[p] - max(logged)))
    return {p: n for p, n in code.counted_files.items() if p != measured}


def _judge(row: dict[str, Any], code: CodeBundle, uncounted: dict[str, int], report: Report, strict: bool) -> None:
    seed = row["seed"]
    label = f"seed {seed}" if seed is not None else (row["log"] or "the artifact")
    shipped = row["shipped_total"]
    compressed = row["logged_code_compressed_bytes"]
    wrapper_total = None
    if compressed is not None and compressed < code.shipped_bytes:
        # The log counted a notional wrapper of the entry script; anything else that runs still counts as shipped.
        wrapper_total = row["model_bytes"] + compressed + sum(n for p, n in code.counted_files.items()
                                                              if p != code.entry)
    row["wrapper_total"] = wrapper_total
    figures = {"shipped_total": shipped, "logged_total": row["logged_total"], "wrapper_total": wrapper_total,
               "model_bytes": row["model_bytes"], "code_bytes": code.code_bytes, "cap": ARTIFACT_CAP_BYTES}
    evidence = tuple(Evidence(p, None, f"{n:,} bytes counted as code") for p, n in code.counted_files.items())
    log_evidence = (Evidence(row["log"], None, f"logged total {row['logged_total']:,} bytes"),) \
        if row["log"] and row["logged_total"] is not None else ()
    if shipped <= ARTIFACT_CAP_BYTES:
        row["verdict"] = "under"
        return
    if wrapper_total is not None and wrapper_total <= ARTIFACT_CAP_BYTES:
        row["verdict"] = "wrapper"
        report.add(Finding(
            "CODE-COUNTING", "error" if strict else "warning",
            f"{label}: cap decided by wrapper accounting: {shipped:,} bytes as shipped (model {row['model_bytes']:,} + "
            f"code {code.code_bytes:,}) is over {ARTIFACT_CAP_BYTES:,}; {wrapper_total:,} with the logged compressed "
            f"code size ({compressed:,} bytes)" + (" (--strict-size judges the shipped bytes)" if strict else ""),
            file=code.entry, seed=seed, data=figures, evidence=evidence + log_evidence, source="log"))
        return
    row["verdict"] = "over"
    logged = row["logged_total"]
    logged_text = f"; the log reports {logged:,}" if logged is not None else ""
    extra_text = f" including {sum(uncounted.values()):,} bytes of code the log does not count" if uncounted else ""
    report.add(Finding(
        "ARTIFACT-CAP-16MB", "error",
        f"{label}: {shipped:,} bytes (model {row['model_bytes']:,} + code {code.code_bytes:,}{extra_text}) is over "
        f"the {ARTIFACT_CAP_BYTES:,}-byte cap by {shipped - ARTIFACT_CAP_BYTES:,}{logged_text}",
        file=row["log"] or code.entry, seed=seed, data=figures, evidence=evidence + log_evidence,
        source="log" if row["log"] else "artifact"))


def _uncounted_warning(code: CodeBundle, uncounted: dict[str, int] | None, report: Report) -> None:
    """One warning per folder for code outside the entry script, saying which files the logs leave out."""
    files = code.extra_files
    if not files:
        return
    missing = files if uncounted is None else {p: n for p, n in uncounted.items() if p in files}
    listing = ", ".join(f"{p} ({n:,} B{', not counted by the logs' if p in missing else ''})" for p, n in files.items())
    tail = (f"; {sum(missing.values()):,} bytes the logs do not count are added to the cap check" if uncounted is not None
            and missing else "; the cap check counts them")
    report.add(Finding(
        "CODE-COUNTING", "warning",
        f"code runs outside {code.entry}: {listing}; counted code should live in {code.entry}{tail}",
        file=next(iter(files)), data={"files": dict(files), "not_counted_by_logs": dict(missing),
                                      "bytes": sum(files.values())},
        evidence=tuple(Evidence(p, None, code.reached_by.get(p, "runs at run time")) for p in files)))


def _judge_logged_totals_only(logs: list, report: Report, why: str) -> None:
    """Without a shipped script or a model size the bytes cannot be recounted, but a logged total over the cap is
    still over it by the run's own account."""
    over = [r for r in logs if getattr(r, "total_size_bytes", None) and r.total_size_bytes > ARTIFACT_CAP_BYTES]
    for run in over:
        report.add(Finding(
            "ARTIFACT-CAP-16MB", "error",
            f"seed {run.seed}: the log reports a total of {run.total_size_bytes:,} bytes, over the "
            f"{ARTIFACT_CAP_BYTES:,}-byte cap by {run.total_size_bytes - ARTIFACT_CAP_BYTES:,} "
            f"({why})",
            file=run.path, line=(getattr(run, "line_of", {}) or {}).get("total_size"), seed=run.seed, source="log",
            data={"logged_total": run.total_size_bytes}))
    if any(getattr(r, "total_size_bytes", None) for r in logs):
        report.mark_checked("ARTIFACT-CAP-16MB")
    elif why.startswith("no shipped script"):
        report.skip("ARTIFACT-CAP-16MB", "no entry script and no logged total: code bytes unknown")

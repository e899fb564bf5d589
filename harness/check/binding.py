"""Bind a harness-written log to the code and artifact that produced it, and verify such bindings in `check`.

Every log `reproduce` writes starts with one line ``pgolf_binding: {json}``: sha256 and size of the shipped entry
script and of its unwrapped form (a self-extracting shim decoded), library versions and hardware. When the run ends
it appends ``pgolf_artifact: {json}`` with the name, size and sha256 of each artifact the run wrote. `check_binding`
compares these with the files in a submission folder: a log whose code hashes do not match the folder's script was
produced by different code (LOG-CODE-CONSISTENCY, error).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from harness.submission.code import load_code
from harness.submission.folder import Submission
from harness.verdict import Report
from rules.finding import Evidence, Finding

HEADER_TAG = "pgolf_binding:"
ARTIFACT_TAG = "pgolf_artifact:"
HEADER_VERSION = 1
SCAN_LINES = 20  # the header is the first line; tolerate a few lines printed before it by a launcher
LIBRARIES = ("torch", "numpy", "sentencepiece", "zstandard", "brotli", "scipy")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unwrapped_code(sub: Submission, code: Any = None) -> tuple[bytes, str]:
    """(the entry script's code as it runs, how it was obtained): the decoded shim when the code set found one."""
    if code is None:
        code = load_code(sub)
    units = list(getattr(code, "units", None) or [])
    decoded = [u for u in units if getattr(u, "origin", "") == "decoded"]
    if decoded:
        return decoded[0].text.encode("utf-8"), "decoded"
    shipped = sub.script.read_bytes() if sub.script is not None else b""
    return shipped, "shipped (no wrapper decoded)"


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing is imported)."""
    from importlib import metadata  # only re-runs write headers: keep `check`'s start-up free of it

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def hardware() -> dict[str, Any]:
    """CPU model and count, and the GPUs nvidia-smi lists (none without it)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import subprocess

    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            gpus = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    import os

    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpus": gpus, "platform": sys.platform}


def make_header(sub: Submission, code: Any = None, extra: dict[str, Any] | None = None) -> str:
    """The first line of a harness-written log."""
    shipped = sub.script.read_bytes() if sub.script is not None else b""
    unwrapped, how = unwrapped_code(sub, code)
    body = {"version": HEADER_VERSION, "script": sub.script.name if sub.script else None,
            "script_sha256": sha256_bytes(shipped), "script_bytes": len(shipped),
            "unwrapped_sha256": sha256_bytes(unwrapped), "unwrapped_bytes": len(unwrapped), "unwrapped_from": how,
            "libraries": library_versions(), "hardware": hardware(), **(extra or {})}
    return f"{HEADER_TAG} {json.dumps(body, sort_keys=True)}"


def make_artifact_line(files: list[Path], root: Path) -> str:
    """The closing line: every artifact the run wrote, with size and hash."""
    rows = [{"name": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(files)]
    return f"{ARTIFACT_TAG} {json.dumps({'files': rows}, sort_keys=True)}"


def read_binding(text: str) -> tuple[dict[str, Any] | None, int | None, list[dict[str, Any]]]:
    """(header, its 1-based line, artifact rows) from a log's text; (None, None, []) without a header."""
    header, line_no, artifacts = None, None, []
    lines = text.splitlines()
    for i, line in enumerate(lines[:SCAN_LINES], start=1):
        if line.startswith(HEADER_TAG):
            try:
                header, line_no = json.loads(line[len(HEADER_TAG):]), i
            except json.JSONDecodeError:
                header, line_no = None, i
            if not isinstance(header, dict):
                header = {"unreadable": True}
            break
    for line in reversed(lines[-SCAN_LINES:]):
        if line.startswith(ARTIFACT_TAG):
            try:
                rows = json.loads(line[len(ARTIFACT_TAG):]).get("files", [])
                artifacts = [r for r in rows if isinstance(r, dict)]
            except (json.JSONDecodeError, AttributeError, TypeError):
                artifacts = []
            break
    return header, line_no, artifacts


def _log_paths(sub: Submission, logs: Any) -> list[Path]:
    """Relative log paths: the submission's own list, plus any LogRun path inside the folder."""
    paths = list(sub.logs)
    for run in logs or []:
        p = Path(getattr(run, "path", "") or "")
        if p.is_absolute():
            try:
                p = p.relative_to(sub.root)
            except ValueError:
                continue
        if str(p) and p not in paths:
            paths.append(p)
    return paths


def _header_problems(header: dict[str, Any], shipped_sha: str, unwrapped_sha: str, how: str) -> list[str]:
    """Why a binding header does not describe the folder's code (empty when it does)."""
    if header.get("unreadable"):
        return ["the binding header is not valid JSON"]
    problems = []
    if header.get("script_sha256") != shipped_sha:
        problems.append(f"shipped script sha256 {shipped_sha[:12]} differs from the logged "
                        f"{str(header.get('script_sha256'))[:12]}")
    if header.get("unwrapped_sha256") != unwrapped_sha:
        problems.append(f"unwrapped code sha256 {unwrapped_sha[:12]} ({how}) differs from the logged "
                        f"{str(header.get('unwrapped_sha256'))[:12]}")
    return problems


def _check_artifacts(sub: Submission, artifact_hashes: dict[str, set[str]], report: Report) -> None:
    """A shipped artifact whose hash no harness log recorded may come from another run: a warning."""
    for name, hashes in sorted(artifact_hashes.items()):
        path = sub.root / name
        if path.is_file() and (actual := sha256_file(path)) not in hashes:
            report.add(Finding("LOG-CODE-CONSISTENCY", "warning",
                               f"{name} matches no artifact hash recorded in the harness logs "
                               f"(sha256 {actual[:12]}); the shipped artifact may come from another run",
                               file=name, source="artifact", data={"sha256": actual, "logged": sorted(hashes)}))


def check_binding(sub: Submission, code: Any, logs: Any, report: Report) -> None:
    """Verify every harness binding header in the folder's logs against the folder's files."""
    if sub.script is None:
        return
    shipped_sha = sha256_file(sub.script)
    unwrapped, how = unwrapped_code(sub, code)
    unwrapped_sha = sha256_bytes(unwrapped)
    script_name = sub.display(sub.script.relative_to(sub.root)) if not sub.single_script else sub.script.name
    seen: list[dict[str, Any]] = []
    artifact_hashes: dict[str, set[str]] = {}
    for rel in _log_paths(sub, logs):
        try:
            text = sub.abs(rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        header, line_no, artifacts = read_binding(text)
        if header is None:
            continue
        shown = sub.display(rel)
        problems = _header_problems(header, shipped_sha, unwrapped_sha, how)
        for row in artifacts:
            artifact_hashes.setdefault(str(row.get("name")), set()).add(str(row.get("sha256")))
        seen.append({"log": shown, "line": line_no, "matches": not problems})
        if problems:
            report.add(Finding("LOG-CODE-CONSISTENCY", "error",
                               f"{shown} was written by the harness for different code: " + "; ".join(problems),
                               file=shown, line=line_no, source="log",
                               evidence=(Evidence(script_name, None, f"sha256 {shipped_sha}"),),
                               data={"logged": header, "script_sha256": shipped_sha,
                                     "unwrapped_sha256": unwrapped_sha}))
    if not seen:
        return
    report.mark_checked("LOG-CODE-CONSISTENCY")
    report.facts["binding"] = seen
    _check_artifacts(sub, artifact_hashes, report)

"""`audit`: check every records folder that the pull-request heads of a challenge repository add or change.

The population: every ref matching a pattern (default ``refs/pull/*/head``) in a local git copy; for each, the
records folders changed between the merge base with BASE and the head (``git diff BASE...HEAD``, as `ci` does).
A folder's content key is its git tree id, so a folder shipped unchanged by several pull requests is checked once,
and the cache (one JSON contract per tree, under a key of the harness's own source) makes a re-audit check only
what changed. Folders are judged by the same `check_path` as `check`, in worker processes, one per core; a folder
that crashes or runs past the time limit is reported for itself ("error"), never hiding the others.
The renderers are harness.report.audit's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.submission.gitsource import (
    changed_folders,
    export_folder,
    folder_trees,
    list_refs,
    require_repo,
    resolve_commit,
)
from harness.verdict import EXIT_COULD_NOT_CHECK, VERDICT_EXIT, worst_exit_code

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pgolf-harness" / "audit"
BASE_CANDIDATES = ("refs/heads/main", "refs/remotes/origin/main", "refs/heads/master", "refs/remotes/origin/master")


@dataclass(frozen=True)
class AuditOptions:
    repo: Path
    refs: str = "refs/pull/*/head"
    base: str | None = None  # None: the repository's main (or master) branch
    jobs: int = max(1, os.cpu_count() or 1)
    cache: Path | None = DEFAULT_CACHE  # None: no cache
    policy: str = "readme"
    folder_timeout_s: float = 300.0
    limit: int | None = None  # check only the first N distinct folders (a quick look; the rows say so)


@dataclass
class AuditRow:
    pr: str  # the pull-request number, or the ref's name when it is not refs/pull/N/...
    ref: str
    commit: str
    folder: str
    tree: str
    verdict: str  # pass | fail | error
    claimed_bpb: float | None = None
    errors: int = 0
    warnings: int = 0
    error_rules: list[str] = field(default_factory=list)
    first_error: dict[str, Any] | None = None  # rule, file, line, message
    cached: bool = False
    absent_files: list[str] = field(default_factory=list)  # blobs the local copy lacks (not judged)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AuditResult:
    rows: list[AuditRow]
    exit_code: int
    refs: int
    folders: int  # distinct folder trees
    checked: int  # judged in this run (not from the cache)
    wall_s: float
    harness_key: str
    base: str


def harness_key() -> str:
    """A digest of the harness's and the rules' source: a cached verdict is reused only by the same code."""
    digest = hashlib.sha256()
    for package in ("harness", "rules"):
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _pr_label(ref: str) -> str:
    match = re.fullmatch(r"refs/pull/(\d+)/\w+", ref)
    return match.group(1) if match else ref


def _resolve_base(repo: Path, base: str | None) -> str:
    if base is not None:
        return resolve_commit(repo, base)
    for candidate in BASE_CANDIDATES:
        try:
            return resolve_commit(repo, candidate)
        except UserError:
            continue
    raise UserError(f"{repo}: no main or master branch to compare the pull requests with; pass --base REF")


def _heads_cache(cache: Path | None, base: str) -> dict[str, dict[str, str]]:
    path = cache / f"heads-{base[:12]}.json" if cache else None
    if path and path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def population(opts: AuditOptions, base: str) -> list[tuple[str, str, str, str]]:
    """(ref, commit, folder, tree) for every records folder a matching head adds or changes (deletions left out)."""
    refs = list_refs(opts.repo, opts.refs)
    known = _heads_cache(opts.cache, base)  # commit -> {folder: tree}; a head's folders never change

    def folders_of(commit: str) -> dict[str, str]:
        if commit in known:
            return known[commit]
        return folder_trees(opts.repo, commit, changed_folders(opts.repo, base, commit))

    with ThreadPoolExecutor(max_workers=max(2, opts.jobs * 2)) as pool:
        trees = dict(zip([c for _r, c in refs], pool.map(folders_of, [c for _r, c in refs]), strict=True))
    if opts.cache:
        opts.cache.mkdir(parents=True, exist_ok=True)
        _write_json(opts.cache / f"heads-{base[:12]}.json", trees)
    return [(ref, commit, folder, tree) for ref, commit in refs for folder, tree in sorted(trees[commit].items())]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


class _FolderTimeout(Exception):
    pass


def _on_alarm(_signum: int, _frame: object) -> None:
    raise _FolderTimeout


def check_tree(repo: str, commit: str, folder: str, policy: str, timeout_s: float) -> dict[str, Any]:
    """The JSON contract of `check` on COMMIT's copy of FOLDER; a crash or a timeout is an "error" contract."""
    from harness.check.pipeline import CheckOptions, check_path
    from harness.report.contract import render_json

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        with tempfile.TemporaryDirectory(prefix="pgolf-audit-") as tmp:
            exported, absent = export_folder(Path(repo), commit, folder, Path(tmp))
            if exported is None:
                return _error_contract(f"{commit[:12]} has no folder {folder}")
            report = check_path(exported, CheckOptions(policy=policy))
            report.target = folder
            contract = json.loads(render_json(report))
            contract["absent_files"] = [p.removeprefix(folder + "/") for p in absent]
            return contract
    except _FolderTimeout:
        return _error_contract(f"check ran past {timeout_s:g} s", transient=True)
    except Exception as exc:  # noqa: BLE001 - one folder's failure is reported for that folder alone
        return _error_contract(f"internal failure ({type(exc).__name__}: {exc})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _error_contract(reason: str, transient: bool = False) -> dict[str, Any]:
    """An "error" contract; a transient one (a timeout, a dead worker) depends on the machine and is not cached."""
    return {"verdict": "error", "exit_code": EXIT_COULD_NOT_CHECK, "findings": [], "could_not_check": [reason],
            "facts": {}, "transient": transient}


def _claimed_bpb(contract: dict[str, Any]) -> float | None:
    value = (contract.get("facts", {}).get("claims") or {}).get("val_bpb")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def row_from_contract(ref: str, commit: str, folder: str, tree: str, contract: dict[str, Any],
                      cached: bool) -> AuditRow:
    """One table row: verdict, counts, the first error (findings are already in severity-then-location order)."""
    findings = contract.get("findings", [])
    errors = [f for f in findings if f.get("severity") == "error"]
    first = errors[0] if errors else None
    if first is None and contract.get("verdict") == "error":
        reasons = contract.get("could_not_check") or ["could not check"]
        first = {"rule": "COULD-NOT-CHECK", "file": None, "line": None, "message": str(reasons[0])}
    return AuditRow(
        pr=_pr_label(ref), ref=ref, commit=commit, folder=folder, tree=tree, verdict=contract.get("verdict", "error"),
        claimed_bpb=_claimed_bpb(contract), errors=len(errors),
        warnings=sum(1 for f in findings if f.get("severity") == "warning"),
        error_rules=sorted({f["rule"] for f in errors}),
        first_error=None if first is None else {k: first.get(k) for k in ("rule", "file", "line", "message")},
        cached=cached, absent_files=list(contract.get("absent_files", [])))


def run_audit(opts: AuditOptions, progress: Any = None) -> AuditResult:
    """Audit every matching head; PROGRESS(done, total) is called as folders finish (None: silent)."""
    start = time.monotonic()
    repo = Path(opts.repo)
    require_repo(repo)
    base = _resolve_base(repo, opts.base)
    entries = population(opts, base)
    key = harness_key()
    store = opts.cache / key if opts.cache else None
    if store:
        store.mkdir(parents=True, exist_ok=True)
    first_seen: dict[str, tuple[str, str]] = {}
    for _ref, commit, folder, tree in entries:
        first_seen.setdefault(tree, (commit, folder))
    trees = list(first_seen)[: opts.limit] if opts.limit is not None else list(first_seen)
    contracts: dict[str, dict[str, Any]] = {}
    todo = []
    for tree in trees:
        cached_file = store / f"{tree}.json" if store else None
        if cached_file and cached_file.exists():
            try:
                contracts[tree] = json.loads(cached_file.read_text(encoding="utf-8"))
                continue
            except (OSError, ValueError):
                pass
        todo.append(tree)
    from_cache = set(contracts)
    with ProcessPoolExecutor(max_workers=opts.jobs) as pool:
        futures = {tree: pool.submit(check_tree, str(repo), *first_seen[tree], opts.policy, opts.folder_timeout_s)
                   for tree in todo}
        for done, (tree, future) in enumerate(futures.items(), 1):
            try:
                contracts[tree] = future.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker is that folder's error, not the audit's
                contracts[tree] = _error_contract(f"worker failed ({type(exc).__name__}: {exc})", transient=True)
            if store and not contracts[tree].get("transient"):
                _write_json(store / f"{tree}.json", contracts[tree])
            if progress:
                progress(done, len(todo))
    rows = [row_from_contract(ref, commit, folder, tree, contracts[tree], tree in from_cache)
            for ref, commit, folder, tree in entries if tree in contracts]
    code = worst_exit_code(VERDICT_EXIT[r.verdict] for r in rows)
    return AuditResult(rows=rows, exit_code=code, refs=len({e[0] for e in entries}), folders=len(trees),
                       checked=len(todo), wall_s=time.monotonic() - start, harness_key=key, base=base)

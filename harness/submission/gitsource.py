"""Submission folders read out of a git repository: refs, changed folders, folder trees, exports.

Used by `ci` (one pull request) and `audit` (every pull request of a challenge repository). The repository is
only read: folders are exported blob by blob (``git cat-file --batch``) into a folder the caller owns; the work
tree, index and refs are never touched. A submission folder is ``records/<track>/<name>/``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from harness.errors import UserError

RECORDS = "records"


def git(repo: Path, *args: str, timeout: float = 300) -> bytes:
    """Run git in REPO; a failure is a UserError with git's last line."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git {' '.join(args[:2])} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def require_repo(repo: Path) -> None:
    """A UserError unless REPO is a git repository (a work tree, a worktree or a bare one)."""
    if not Path(repo).exists():
        raise UserError(f"{repo}: no such folder")
    git(repo, "rev-parse", "--git-dir")


def resolve_commit(repo: Path, ref: str) -> str:
    """The commit REF names; a UserError saying how to get it when the repository lacks it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except UserError:
        raise UserError(f"{ref}: not a commit in {repo} (fetch it, e.g. actions/checkout with "
                        "fetch-depth: 0)") from None


def _diff(repo: Path, base: str, head: str, *pathspec: str) -> list[tuple[str, str]]:
    """(status letter, path) for every file under PATHSPEC changed between the merge base of BASE and HEAD, and
    HEAD (``git diff BASE...HEAD``); a UserError when git fails (e.g. no merge base)."""
    out = git(repo, "diff", "--name-status", "-z", "--no-renames", f"{base}...{head}", "--", *pathspec)
    parts = out.decode("utf-8", errors="surrogateescape").split("\0")
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]


def changed_files(repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(status letter, path) for every file changed between the merge base of BASE and HEAD, and HEAD."""
    for ref in (base, head):
        resolve_commit(repo, ref)
    return _diff(repo, base, head)


def changed_folders(repo: Path, base: str, head: str) -> list[str]:
    """The submission folders HEAD adds, changes or deletes against its merge base with BASE (both already resolved
    commits); none when the histories share no merge base, as nothing can then be attributed to HEAD."""
    try:
        changes = _diff(repo, base, head, RECORDS)
    except UserError:
        return []
    return sorted({f for _status, path in changes if (f := submission_folder(path)) is not None})


def submission_folder(path: str) -> str | None:
    """records/<track>/<name>/... -> records/<track>/<name>; None for anything else."""
    parts = PurePosixPath(path).parts
    if len(parts) >= 4 and parts[0] == RECORDS:
        return "/".join(parts[:3])
    return None


def list_refs(repo: Path, pattern: str) -> list[tuple[str, str]]:
    """(ref name, commit) for every ref matching PATTERN (a for-each-ref pattern, e.g. refs/pull/*/head)."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname) %(objecttype)", pattern)
    refs = []
    for line in out.decode(errors="replace").splitlines():
        name, sha, kind = line.split(" ")
        if kind == "commit":
            refs.append((name, sha))
    return refs


def folder_trees(repo: Path, commit: str, folders: list[str]) -> dict[str, str]:
    """folder -> the git tree id of that folder at COMMIT (its content key); folders COMMIT lacks are left out."""
    if not folders:
        return {}
    out = git(repo, "ls-tree", "-z", "-d", commit, "--", *folders)
    trees = {}
    for entry in out.decode("utf-8", errors="surrogateescape").split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            trees[path] = meta.split()[2]
    return trees


def export_folder(repo: Path, ref: str, folder: str, dest: Path) -> tuple[Path | None, list[str]]:
    """Write REF's copy of FOLDER under DEST: (the folder or None when REF lacks it, files whose blobs are absent).

    Regular files only (symlinks and submodules are left out, as `git archive` into a checkout-free folder would
    leave them unusable). A blob the local copy lacks (a shallow or size-filtered mirror keeps the tree but not the
    largest files) is listed instead of failing the whole folder.
    """
    listing = git(repo, "ls-tree", "-r", "-z", ref, "--", folder).decode("utf-8", errors="surrogateescape")
    entries = []
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        mode, kind, sha = meta.split()
        parts = PurePosixPath(path).parts
        if kind == "blob" and mode in ("100644", "100755") and ".." not in parts and not path.startswith("/"):
            entries.append((sha, path))
    if not entries:
        return None, []
    try:
        proc = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"], check=False, capture_output=True,
                              timeout=600, input="".join(f"{sha}\n" for sha, _p in entries).encode())
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"cannot run git: {exc}") from None
    out, pos, absent = proc.stdout, 0, []
    for sha, path in entries:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            absent.append(path)
            continue
        size = int(header[2])
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out[pos:pos + size])
        pos += size + 1
    return dest / folder, absent

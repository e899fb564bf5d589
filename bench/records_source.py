"""Where the benchmarks find openai/parameter-golf: PG_REPO (a git repository, bare is fine, or a folder holding
records/), else a mirror at a conventional path. Nothing from it is ever written into this project."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

CANDIDATES = ("/work/.mirror/openai+parameter-golf/repo",)
MAIN_REF = "4908dc46f"  # the commit the rulebook and the docs cite


def find_repo() -> Path | None:
    """The configured repository or records folder, or None."""
    for candidate in [os.environ.get("PG_REPO"), *CANDIDATES]:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def materialize_records(repo: Path, dest: Path, ref: str = MAIN_REF) -> Path:
    """Return a folder holding records/ (extracted from REF when repo is a git repository)."""
    if (repo / "records").is_dir():
        return repo / "records"
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "records"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "records"


"""`audit` over the pull-request heads of a temporary challenge repository: population, dedup, cache, isolation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.audit import AuditOptions, check_tree, run_audit
from harness.errors import UserError
from harness.report.audit import RENDERERS

TRACK = "records/track_10min_16mb"
CLEAN = {"train_gpt.py": "import torch\nprint('train')\n", "README.md": "a run\n"}
LEAKY = {"train_gpt.py": "import urllib.request\nurllib.request.urlopen('http://x.example/weights.bin')\n"}


def _folder(name: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{TRACK}/{name}/{rel}": text for rel, text in files.items()}


@pytest.fixture
def audited_repo(pull_request_heads, tmp_path):
    """Four pull requests: one folder, the same folder again, a different folder, and one outside records/."""
    repo, open_pr = pull_request_heads
    open_pr(1, _folder("2026-05-01_A", CLEAN))
    open_pr(2, _folder("2026-05-01_A", CLEAN))
    open_pr(3, _folder("2026-05-02_B", LEAKY))
    open_pr(4, {"docs.md": "not a submission\n"})
    return repo, tmp_path / "cache"


def test_rows_per_pull_request_and_folder_with_identical_folders_checked_once(audited_repo):
    """Every (PR, folder) gets a row; a folder shipped unchanged by two PRs is checked once; PR 4 has none."""
    repo, cache = audited_repo
    result = run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    assert sorted((r.pr, r.folder) for r in result.rows) == [
        ("1", f"{TRACK}/2026-05-01_A"), ("2", f"{TRACK}/2026-05-01_A"), ("3", f"{TRACK}/2026-05-02_B")]
    assert result.folders == 2 and result.checked == 2
    by_pr = {r.pr: r for r in result.rows}
    assert by_pr["1"].verdict == by_pr["2"].verdict and by_pr["1"].tree == by_pr["2"].tree
    assert by_pr["3"].verdict == "fail" and by_pr["3"].first_error["rule"]
    assert result.exit_code == 1


def test_a_re_audit_takes_every_verdict_from_the_cache(audited_repo):
    """A second audit with the same code and the same heads checks nothing and gives the same rows."""
    repo, cache = audited_repo
    first = run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    again = run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    assert again.checked == 0 and all(r.cached for r in again.rows)
    assert [(r.pr, r.verdict, r.first_error) for r in again.rows] == [(r.pr, r.verdict, r.first_error)
                                                                       for r in first.rows]


def test_a_changed_folder_is_checked_again(audited_repo, pull_request_heads):
    """A new head whose folder differs from every cached tree is the only folder checked."""
    repo, cache = audited_repo
    _repo, open_pr = pull_request_heads
    run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    open_pr(5, _folder("2026-05-01_A", {**CLEAN, "README.md": "a run, edited\n"}))
    result = run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    assert result.checked == 1 and [r.pr for r in result.rows if not r.cached] == ["5"]


@pytest.mark.parametrize("commit_of, timeout, reason", [
    ("HEAD", 300.0, "has no folder"),
    ("pr3", 1e-6, "ran past"),
])
def test_a_folder_that_cannot_be_judged_is_an_error_contract(audited_repo, commit_of, timeout, reason):
    """A missing folder or a check past the time limit gives an "error" contract for that folder, never a raise."""
    repo, _cache = audited_repo
    contract = check_tree(str(repo), commit_of, f"{TRACK}/2026-05-02_B", "readme", timeout)
    assert contract["verdict"] == "error" and reason in contract["could_not_check"][0]


def test_no_matching_refs_and_a_missing_repository(audited_repo, tmp_path):
    """A pattern matching nothing gives an empty pass; a folder that is not a repository is a UserError."""
    repo, cache = audited_repo
    empty = run_audit(AuditOptions(repo=repo, refs="refs/nothing/*", cache=cache, jobs=1))
    assert empty.rows == [] and empty.exit_code == 0
    with pytest.raises(UserError):
        run_audit(AuditOptions(repo=tmp_path / "nowhere", cache=cache, jobs=1))


@pytest.mark.parametrize("fmt, marker", [
    ("text", "verdicts: pass"), ("markdown", "| PR | folder |"), ("html", "<table>"), ("json", '"rows"'),
])
def test_every_format_names_the_failing_folder_and_its_first_error(audited_repo, fmt, marker):
    """Each renderer shows the summary marker, the failing folder and its first error's rule."""
    repo, cache = audited_repo
    result = run_audit(AuditOptions(repo=repo, cache=cache, jobs=1))
    text = RENDERERS[fmt](result)
    failing = next(r for r in result.rows if r.verdict == "fail")
    assert marker in text and "2026-05-02_B" in text and failing.first_error["rule"] in text
    if fmt == "html":
        assert "http" not in text.split("<table>")[0] and "<script>" in text  # self-contained, sortable
    if fmt == "json":
        assert len(json.loads(text)["rows"]) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[3]
    return subprocess.run([sys.executable, str(root / "cli.py"), *args], capture_output=True, text=True, timeout=300)


def test_cli_audit_writes_the_table_and_reports_bad_input(audited_repo, tmp_path):
    """`audit -o x.html` writes HTML by its suffix; a non-repository or a missing output folder exits 2 in one line."""
    repo, cache = audited_repo
    out = tmp_path / "audit.html"
    ok = _cli("audit", "--repo", str(repo), "--cache", str(cache), "-j", "1", "-o", str(out))
    assert ok.returncode == 1 and out.read_text().startswith("<!doctype html>"), ok.stderr
    for args in (["--repo", str(tmp_path)], ["--repo", str(repo), "-o", str(tmp_path / "missing" / "a.md")]):
        bad = _cli("audit", *args, "--cache", str(cache))
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "error:" in bad.stderr, bad.stderr


def test_a_blob_missing_from_the_local_copy_is_listed_and_the_rest_judged(pull_request_heads, tmp_path):
    """A size-filtered mirror lacks a model file: the folder is still exported and judged, the file is named."""
    repo, open_pr = pull_request_heads
    open_pr(7, _folder("2026-05-03_C", {**CLEAN, "final_model.ptz": "weights that the mirror lost\n"}))
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", f"refs/pull/7/head:{TRACK}/2026-05-03_C/final_model.ptz"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (repo / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    result = run_audit(AuditOptions(repo=repo, cache=tmp_path / "cache", jobs=1))
    row = next(r for r in result.rows if r.pr == "7")
    assert row.verdict != "error" and row.absent_files == ["final_model.ptz"]
    assert "lack files in the local copy" in RENDERERS["text"](result)

"""Tests for harness.precommit: staged files to records folders, one `check` per folder, the worst exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from harness import precommit

ROOT = Path(__file__).resolve().parents[2]
TRACK = "records/track_non_record_16mb"  # the shipped example is a CPU run: a non-record submission
PASSING = ROOT / "submissions" / "my_run"
FAILING = ROOT / "submissions" / "examples" / "illegal_network_at_eval"  # one NETWORK-AT-EVAL error


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(repo), "PATH": os.environ["PATH"]}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def participant_repo(tmp_path, monkeypatch):
    """A participant's clone as the working directory; returns a helper that copies example folders into
    records/ under the given names, stages them and returns the staged file names."""
    monkeypatch.chdir(tmp_path)
    _git(tmp_path, "init", "-q", "-b", "main")

    def stage(folders: dict[str, Path], extra: tuple[str, ...] = ()) -> list[str]:
        for name, source in folders.items():
            shutil.copytree(source, tmp_path / TRACK / name)
        for rel in extra:
            (tmp_path / rel).write_text("edited\n")
        _git(tmp_path, "add", "-A")
        return _git(tmp_path, "diff", "--cached", "--name-only").splitlines()

    return stage


@pytest.mark.parametrize(("files", "folders"), [
    ([f"{TRACK}/A/train_gpt.py", f"{TRACK}/A/logs/seed1.txt"], [f"{TRACK}/A"]),
    ([f"{TRACK}/B/README.md", f"{TRACK}/A/README.md"], [f"{TRACK}/A", f"{TRACK}/B"]),
    (["README.md", f"{TRACK}/stray.md", "train_gpt.py"], []),
    ([f"{TRACK}/Gone/README.md"], []),
])
def test_staged_folders(tmp_path, monkeypatch, files, folders):
    """Files map to their records folders, each once and sorted; files elsewhere and deleted folders drop out."""
    monkeypatch.chdir(tmp_path)
    for name in ("A", "B"):
        (tmp_path / TRACK / name).mkdir(parents=True)
    assert precommit.staged_folders(files) == folders


def test_absolute_paths_under_the_working_directory(tmp_path, monkeypatch):
    """An absolute path inside the repository names the same folder as its relative form."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / TRACK / "A").mkdir(parents=True)
    assert precommit.staged_folders([str(tmp_path / TRACK / "A" / "x.py")]) == [f"{TRACK}/A"]


@pytest.mark.parametrize(("codes", "worst"), [([], 0), ([0, 0], 0), ([0, 2], 2), ([2, 1, 0], 1), ([1], 1)])
def test_worst_exit_code(codes, worst):
    """Error findings outrank could-not-check, which outranks pass."""
    assert precommit.worst_exit_code(codes) == worst


def test_a_passing_folder_prints_one_line(participant_repo, capsys):
    """A staged folder that passes exits 0 with one line for it."""
    staged = participant_repo({"2026-05-01_Mine": PASSING})
    assert precommit.main(staged) == 0
    assert capsys.readouterr().out.splitlines() == [f"{TRACK}/2026-05-01_Mine: pass (exit 0)"]


def test_a_failing_folder_fails_the_hook_with_its_report(participant_repo, capsys):
    """With a passing and a failing folder staged, the hook exits 1 and prints the failing folder's findings."""
    staged = participant_repo({"2026-05-01_Mine": PASSING, "2026-05-02_Net": FAILING}, extra=("README.md",))
    assert precommit.main(staged) == 1
    out = capsys.readouterr().out
    assert f"{TRACK}/2026-05-01_Mine: pass (exit 0)" in out and f"{TRACK}/2026-05-02_Net: fail (exit 1)" in out
    assert "NETWORK-AT-EVAL" in out and "train_gpt.py:81" in out


def test_no_records_file_staged(participant_repo, capsys):
    """A commit touching no records folder passes and says so."""
    assert precommit.main(participant_repo({}, extra=("README.md",))) == 0
    assert "no staged file lies in a records/<track>/<name>/ folder" in capsys.readouterr().out


def test_hook_definition_runs_the_console_script():
    """.pre-commit-hooks.yaml's pgolf-check hook runs the installed pgolf-precommit script on records/ files."""
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["language"], hook["entry"]) == ("pgolf-check", "python", "pgolf-precommit")
    assert hook["pass_filenames"] is True and hook["files"] == "^records/[^/]+/[^/]+/"
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == hook["entry"]]
    assert script.value == "harness.precommit:main"

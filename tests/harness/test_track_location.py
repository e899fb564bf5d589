"""The folder's place in the challenge repository decides which track's budgets a submission is judged by."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.check.pipeline import check_path


@pytest.mark.parametrize("where, said, judged", [
    ("track_non_record_16mb", "10min_16mb", "non_record_16mb"),  # a non-record folder whose json says record
    ("track_10min_16mb", "non_record_16mb", "non_record_16mb"),  # a record folder whose json claims no record
    ("track_10min_16mb", None, "10min_16mb"),  # no track in the json
    ("elsewhere", "non_record_16mb", "non_record_16mb"),  # outside the layout the json decides
])
def test_location_decides_the_track(legal_submission, tmp_path, where, said, judged):
    """A folder under records/<track>/ gets that track, unless its submission.json itself declares an off-record
    track (no record claim: judged as declared, with a misfiled-folder warning); a track overridden is noted."""
    folder = tmp_path / "repo" / "records" / where / "2026-03-17_Example"
    shutil.copytree(legal_submission, folder)
    manifest = json.loads((folder / "submission.json").read_text())
    manifest.pop("track", None)
    if said is not None:
        manifest["track"] = said
    (folder / "submission.json").write_text(json.dumps(manifest))
    report = check_path(folder)
    claims = report.facts["claims"]
    assert claims["track"] == judged
    noted = any("submission.json says" in note for note in claims["schema_notes"])
    assert noted == (said is not None and said != judged)
    misfiled = [f for f in report.findings if f.rule == "SUBMISSION-FORMAT" and "declares track" in f.message]
    assert bool(misfiled) == (where == "track_10min_16mb" and said == "non_record_16mb")

"""Bad input end to end: a clear finding or a one-line error, exit 1 or 2, no traceback, the folder untouched."""

from __future__ import annotations

import base64
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOMB = base64.b85encode(lzma.compress(b"\0" * (64 * 1024 * 1024), preset=9)).decode()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _check(folder: Path) -> tuple[int, dict, str]:
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "check", str(folder), "--format", "json"],
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stdout + result.stderr
    data = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.returncode, data, result.stderr


CASES = {
    "empty folder": {},
    "missing files": {"train_gpt.py": "print('hi')\n"},
    "binary script": {"train_gpt.py": bytes(range(256)) * 4},
    "non-UTF-8 script": {"train_gpt.py": "x = 'caf\xe9'\n".encode("latin-1")},
    "syntax error": {"train_gpt.py": "def main(:\n    pass\n"},
    "invalid JSON": {"train_gpt.py": "print(1)\n", "submission.json": "{'val_bpb': 1.2,", "README.md": "x",
                     "train.log": "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n"},
    "decompression bomb in a shim": {"train_gpt.py": f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{BOMB}")))\n'},
    "decompression bomb as artifact": {"train_gpt.py": "print(1)\n", "final_model.int8.ptz": lzma.compress(b"\0" * (64 * 1024 * 1024))},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_folder_gets_a_verdict_not_a_crash(make_submission, case):
    """Each malformed folder is judged (exit 1) or refused (exit 2), with its files byte-identical afterwards."""
    folder = make_submission(CASES[case])
    before = _snapshot(folder)
    code, data, stderr = _check(folder)
    assert code in (1, 2), (code, stderr)
    assert data.get("verdict") in ("fail", "error")
    assert _snapshot(folder) == before


def test_python_312_syntax_is_analysed(make_submission):
    """A script using Python 3.12-only f-strings parses (line numbers kept) and is not 'could not check'."""
    script = 'd = {"a": 1}\nprint(f"{d["a"]} {\'\\n\'.join([\'x\'])}")\n'
    folder = make_submission({"train_gpt.py": script})
    _, data, _ = _check(folder)
    assert not any("analysable" in reason for reason in data["could_not_check"])


def test_symlink_out_of_the_folder_is_an_error_and_not_followed(make_submission, tmp_path):
    """A symlink pointing outside the folder is a SUBMISSION-FORMAT error; its target is never read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    folder = make_submission({"train_gpt.py": "print(1)\n"})
    os.symlink(secret, folder / "train.log")
    code, data, _ = _check(folder)
    assert code == 1
    assert any(f["rule"] == "SUBMISSION-FORMAT" and "symlink" in f["message"] for f in data["findings"])


@pytest.mark.slow
def test_100_mb_log_is_parsed_in_bounded_time(make_submission):
    """A 100 MB log does not crash or hang the check."""
    folder = make_submission({"train_gpt.py": "print(1)\n", "README.md": "x", "submission.json": "{}"})
    line = "step:1/20000 train_loss:2.3000 train_time:100ms step_avg:10.00ms\n"
    with open(folder / "train.log", "w") as fh:
        fh.write(line * (100_000_000 // len(line)))
        fh.write("final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570\n")
    code, data, _ = _check(folder)
    assert code in (0, 1, 2) and data["verdict"] in ("pass", "fail", "error")

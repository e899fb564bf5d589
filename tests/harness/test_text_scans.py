"""Non-Python files that say what runs: launch commands in a README, compiled C helpers."""

from __future__ import annotations

import pytest

from harness.check.static_rules import run_text_scans
from harness.submission.code import load_code
from harness.submission.folder import load_submission
from harness.verdict import Report

GATED_C = """
void hints(const int *tokens, const unsigned char *boundary_lut, int *out, int n) {
    for (int i = 1; i < n; i++) {
        int tok = tokens[i];
        int is_boundary = boundary_lut[tok];
        if (!is_boundary) {
            out[i] = tokens[i - 1];
        }
    }
}
"""
CAUSAL_C = """
void hints(const int *tokens, const unsigned char *boundary_lut, int *out, int n) {
    for (int i = 1; i < n; i++) {
        int prev = tokens[i - 1];
        if (!boundary_lut[prev]) {
            out[i] = prev;
        }
    }
}
"""
COMPILE = 'import subprocess\nsubprocess.run(["g++", "-O2", "-shared", "-o", "h.so", "hints.c"], check=True)\n'


@pytest.mark.parametrize(("files", "expected"), [
    ({"README.md": "Run:\n\n    ln -s data/fineweb_val_000000.bin data/fineweb_train_000000.bin\n"}, ["TRAIN-ON-VAL"]),
    ({"README.md": "Run:\n\n    ln -s data/fineweb_train_000000.bin data/fineweb_train_000001.bin\n"}, []),
    ({"hints.c": GATED_C}, ["NGRAM-GATE-ON-TARGET"]),
    ({"hints.c": CAUSAL_C}, []),
])
def test_text_scans(make_submission, files, expected):
    """A val shard linked as a train shard, or a C loop gated on the current token, is found; near-misses are not."""
    folder = make_submission({"train_gpt.py": COMPILE, **files})
    sub = load_submission(folder)
    report = Report(str(folder))
    run_text_scans(sub, load_code(sub), report)
    assert [f.rule for f in report.findings] == expected

"""A logged code size that differs from the shipped script: small edits warn, other code fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.consistency import check_log_code
from harness.findings import Report
from harness.logparse import parse_log


@pytest.mark.parametrize(("logged", "severity"), [(47_686, None), (47_703, "warning"), (98_302, "error")])
def test_code_size_difference_severity(logged, severity):
    """Equal sizes pass, a 17-byte edit is a warning, twice the size is an error."""
    text = "x = 1\n" * (47_686 // 6) + "#" * (47_686 % 6)
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=text, origin="shipped")],
                           shipped_bytes=47_686, counted_files={"train_gpt.py": 47_686})
    run = parse_log(f"Code size: {logged} bytes\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n",
                    "train.log")
    report = Report("x")
    check_log_code(code, [run], report)
    assert [f.severity for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"] == ([severity] if severity else [])

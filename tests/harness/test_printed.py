"""check_printed_precision: a final score line the shipped code cannot print with those decimals is LOG-CODE."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.check.printed import check_printed_precision
from harness.submission.logs import parse_log
from harness.verdict import Report

_CODE = '''def report(label, loss, bpb, ms):
    print(f"{label} val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{ms:.0f}ms")
def main(loss, bpb):
    print("final_int8_zlib_roundtrip_exact val_loss:{:.8f} val_bpb:{:.8f}".format(loss, bpb))
    print(f"sliding_window val_loss:{loss} val_bpb:{bpb}")
'''


@pytest.mark.parametrize("line, flagged", [
    ("quantized_ttt val_loss:2.31712816 val_bpb:1.05782711 eval_time:510213ms", False),  # VALID: as the code prints
    ("quantized_ttt val_loss:2.31712816 val_bpb:1.057827113 eval_time:510213ms", True),  # INVALID: nine decimals
    ("final_int8_zlib_roundtrip_exact val_loss:1.8692 val_bpb:1.1170", True),  # INVALID: .format template, 4 places
    ("final_int8_zlib_roundtrip_exact val_loss:nan val_bpb:nan", False),  # VALID: nan at any precision
    ("sliding_window val_loss:2.3 val_bpb:1.0578271133", False),  # VALID: a field with no fixed precision
    ("ttt_exact val_loss:2.31712816 val_bpb:1.057827113", False),  # near-miss: no template has this text
])
def test_final_line_precision(line, flagged):
    """A final line that a template names but prints with other decimals is an error; others are not judged."""
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=_CODE, origin="shipped")])
    run = parse_log(f"step:1/10 train_loss:3.0\n{line}\n", "train_seed1.log")
    report = Report("x")
    check_printed_precision(code, [run], report)
    found = [f for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]
    assert bool(found) == flagged
    assert all(f.severity == "error" and f.line == 2 for f in found)

"""Property tests: parse_log never raises, and generated metric lines round-trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.submission.logs import parse_log

_TAGS = st.sampled_from(["final_int8_zlib_roundtrip_exact", "legal_ttt_exact", "quantized_ttt_phased",
                         "final_int6_sliding_window_exact", "quantized_sliding_window", "final_sliding"])
_LOG_ALPHABET = st.text(alphabet=st.sampled_from(list("val_losbpé:=/ 0123456789.\n\r\t|=-stepfinal_x")), max_size=400)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=400), _LOG_ALPHABET))
def test_parse_log_never_raises(text):
    """Arbitrary text parses to a LogRun without an exception."""
    run = parse_log(text, "any.log")
    assert run.n_lines >= 0


@settings(max_examples=200, deadline=None)
@given(tag=_TAGS, loss=st.floats(0.01, 20, allow_nan=False), bpb=st.floats(0.01, 20, allow_nan=False),
       places=st.integers(1, 8), eval_ms=st.integers(0, 10**7), prefix=st.sampled_from(["", "1776142360.710 "]))
def test_metric_line_round_trips(tag, loss, bpb, places, eval_ms, prefix):
    """A printed final line comes back with the same tag, numbers at the printed precision, and eval time."""
    line = f"{prefix}{tag} val_loss:{loss:.{places}f} val_bpb:{bpb:.{places}f} eval_time:{eval_ms}ms\n"
    run = parse_log(line, "train.log")
    assert run.final.tag == tag
    assert run.final.val_bpb_text == f"{bpb:.{places}f}"
    assert run.final.val_loss == float(f"{loss:.{places}f}")
    assert run.final.eval_time_ms == eval_ms

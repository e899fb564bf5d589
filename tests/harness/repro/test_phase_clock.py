"""The harness clock: phase boundaries from log lines and the caps that follow from them."""

from __future__ import annotations

import pytest

from harness.run.clock import PhaseClock

BASELINE = [
    (1.0, "seed:42"),
    (2.0, "step:0/100 val_loss:6.9 val_bpb:4.1 train_time:0ms step_avg:0.01ms"),
    (3.0, "step:1/100 train_loss:6.9 train_time:900ms step_avg:900.00ms"),
    (12.0, "stopping_early: wallclock_cap train_time:10000ms step:50/100"),
    (12.1, "peak memory allocated: 10 MiB reserved: 10 MiB"),
    (13.0, "Serialized model: 1000 bytes"),
    (15.0, "Total submission size int8+zlib: 2000 bytes"),
    (20.0, "final_int8_zlib_roundtrip val_loss:2.1 val_bpb:1.25 eval_time:5000ms"),
]
LATER_DIALECT = [
    (1.0, "warmup_step:1/20"),
    (2.0, "1/100 train_loss: 6.9 train_time: 0.1m tok/s: 1000"),
    (12.0, "100/100 val_loss: 2.2 val_bpb: 1.3"),
    (14.0, "Serialized model quantized+brotli: 1000 bytes"),
    (16.0, "beginning TTT eval timer"),
    (17.0, "Total submission size quantized+brotli: 2000 bytes"),
    (30.0, "quantized_ttt_phased val_loss:2.0 val_bpb:1.2 eval_time:14000ms"),
]


@pytest.mark.parametrize("lines, train_start, train_end, eval_start, script_ms", [
    (BASELINE, 2.0, 12.0, 15.0, 10000.0),
    (LATER_DIALECT, 2.0, 12.0, 16.0, 6000.0),
])
def test_phase_boundaries(lines, train_start, train_end, eval_start, script_ms):
    """Training starts at the first step line and ends at stopping_early / the last step; eval at the timer or
    after the last serialization line."""
    clock = PhaseClock(0.0, 600, 600, 120)
    for t, line in lines:
        clock.feed(t, line)
    assert (clock.train_start, clock.train_end, clock.eval_start) == (train_start, train_end, eval_start)
    assert clock.script_train_ms == script_ms
    figures = clock.figures(21.0)
    assert figures["train_s"] == train_end - train_start and figures["setup_s"] == train_start


@pytest.mark.parametrize("lines, now, expect", [
    ([], 9.9, None),
    ([], 10.0, "setup"),
    ([(4.0, "step:1/9 train_loss:3 train_time:1ms")], 4.0 + 100 + 6.0 - 0.01, None),
    ([(4.0, "step:1/9 train_loss:3 train_time:1ms")], 4.0 + 100 + 6.0, "training"),
    ([(4.0, "step:9/9 train_loss:3 train_time:1ms")], 4.0 + 50 + 6.0, "evaluation"),
    ([(4.0, "step:9/9 train_loss:3 train_time:1ms")], 4.0 + 50 + 5.9, None),
])
def test_caps_share_one_allowance(lines, now, expect):
    """Setup spends the allowance; training and evaluation may use only what is left of it."""
    clock = PhaseClock(0.0, train_budget=100, eval_budget=50, allowance=10)
    for t, line in lines:
        clock.feed(t, line)
    reason = clock.deadline(now)
    assert (reason.split()[0] if reason else None) == expect


@pytest.mark.parametrize("lines, now, expected", [
    ([(1.0, "seed:1")], 3.0, "seed 7: setup 2/120 s"),
    ([(1.0, "step:40/150 train_loss:4.0 train_time:9000ms")], 11.0, "seed 7: train 10/600 s, step 40 of 150"),
    ([(1.0, "step:10/20000 train_loss:4.0 train_time:9000ms")], 11.0,
     "seed 7: train 10/600 s, step 10 (about 600 by the budget at this pace; the script's cap is 20000)"),
    ([(1.0, "step:1/20000 train_loss:4.0 train_time:9000ms")], 1.0, "seed 7: train 0/600 s, step 1 of 20000"),
    ([(1.0, "step:5/5 train_loss:4.0 train_time:9000ms")], 4.0, "seed 7: eval 3/600 s"),
])
def test_progress_line_shows_phase_elapsed_cap_and_steps(lines, now, expected):
    """Progress names the phase, elapsed over its cap, and the script's step against what it will really reach."""
    from harness.run.outcome import ReproduceOptions
    from harness.run.seed import _progress_line

    clock = PhaseClock(1.0, 600, 600, 120)
    for t, line in lines:
        clock.feed(t, line)
    assert _progress_line(7, clock, now, ReproduceOptions()) == expected

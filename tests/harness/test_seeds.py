"""Seed hygiene: repeated seeds, unreported runs and mixed configurations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.check.seeds import check_seeds
from harness.verdict import Report


def _log(path, run_seed, loss, bpb, **hparams):
    return SimpleNamespace(path=path, seed=run_seed, final=SimpleNamespace(val_loss=loss, val_bpb=bpb),
                           hyperparameters=hparams)


SUB = SimpleNamespace(submission_json="submission.json")


@pytest.mark.parametrize(("logs", "claimed", "expected"), [
    ([_log("a.log", 1, 2.0, 1.1), _log("b.log", 2, 2.1, 1.2)], {"1", "2"}, []),
    ([_log("a.log", 1, 2.0, 1.1), _log("b.log", 1, 2.1, 1.2)], {"1"}, ["SEED-BRUTEFORCE"]),
    ([_log("a.log", 1, 2.0, 1.1), _log("train.log", 1, 2.0, 1.1)], {"1"}, []),
    ([_log("a.log", 1, 2.0, 1.1), _log("b.log", 2, 2.1, 1.2), _log("c.log", 3, 2.0, 1.1)], {"1", "2"},
     ["SEED-BRUTEFORCE"]),
    ([_log("a.log", 1, 2.0, 1.1, lr="0.02"), _log("b.log", 2, 2.1, 1.2, lr="0.03")], {"1", "2"}, ["SIGNIFICANCE"]),
    ([_log("a.log", 1, 2.0, 1.1, lr="0.02", seed="1"), _log("b.log", 2, 2.1, 1.2, lr="0.02", seed="2")],
     {"1", "2"}, []),
    # VALID: measurements read from step, score and throughput lines differ between any two runs of one setup
    ([_log("a.log", 1, 2.0, 1.1, step_avg="420ms", eval_time="17504ms", train_loss="6.93", peak_rss_mib="757",
           model_tflops_per_s="0.006", val_loss="2.0", step="2025"),
      _log("b.log", 2, 2.1, 1.2, step_avg="7714ms", eval_time="3386ms", train_loss="6.94", peak_rss_mib="767",
           model_tflops_per_s="0.025", val_loss="2.1", step="2028")], {"1", "2"}, []),
    # INVALID: a setting changed beside the measurements is still a mixed configuration
    ([_log("a.log", 1, 2.0, 1.1, step_avg="420ms", ttt_epochs="3"),
      _log("b.log", 2, 2.1, 1.2, step_avg="7714ms", ttt_epochs="1")], {"1", "2"}, ["SIGNIFICANCE"]),
])
def test_seed_findings(logs, claimed, expected):
    """Repeated seeds with different results, unreported runs and per-seed configuration changes are warned."""
    report = Report("x")
    check_seeds(SUB, None, SimpleNamespace(seeds={s: None for s in claimed}), logs, report)
    assert sorted(f.rule for f in report.findings) == expected
    assert all(f.severity == "warning" for f in report.findings)


def test_no_scored_logs_is_not_checked():
    """Without a scored log the rule is listed as not checked."""
    report = Report("x")
    check_seeds(SUB, None, None, [], report)
    assert [n.rule for n in report.not_checked] == ["SEED-BRUTEFORCE"]

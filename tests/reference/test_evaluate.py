"""Tests for reference/evaluate.py: sliding windows, the score ledger and legal TTT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import TWO_LETTER_TABLES as TABLES  # on sys.path through conftest.py

from reference.evaluate import (
    LegalityError,
    ScoreLedger,
    Totals,
    TTTConfig,
    dynamic_eval,
    plan_windows,
    score_windows,
    sliding_eval,
    train_on_spans,
    ttt_eval,
)


def stream(n: int, seed: int = 1) -> torch.Tensor:
    """A deterministic token stream of n ids in [2, 64)."""
    return torch.from_numpy(np.random.default_rng(seed).integers(2, 64, n)).long()


class TestWindows:
    """The v2 sliding-window plan."""

    @pytest.mark.parametrize("n,seq_len,stride", [(1, 8, 4), (8, 8, 4), (100, 16, 4), (101, 16, 16), (333, 32, 8),
                                                  (64, 16, 1)])
    def test_every_target_scored_exactly_once(self, n, seq_len, stride):
        """The scored spans of all windows tile [0, N) without overlap."""
        win = plan_windows(n, seq_len, stride)
        counts = np.zeros(n, dtype=int)
        for s, length, f in zip(win.starts, win.lengths, win.score_from):
            assert length <= seq_len and s + length <= n
            counts[s + f:s + length] += 1
        assert (counts == 1).all()

    def test_later_windows_have_full_context(self):
        """Every scored target after the first window sees at least L - stride tokens of context."""
        win = plan_windows(200, 32, 8)
        assert (win.score_from[1:] == 24).all() and (win.lengths[win.starts > 0] > 24).all()


class TestSlidingEval:
    """sliding_eval against direct computation."""

    def test_single_window_equals_direct_mean(self, tiny_model):
        """With N = L there is one window, whose mean NLL is the model's loss on the whole sequence."""
        tokens = stream(33)
        loss, _ = sliding_eval(tiny_model, tokens, TABLES, 32, 32)
        direct = tiny_model.token_losses(tokens[None, :-1], tokens[None, 1:]).mean().item()
        assert loss == pytest.approx(direct, rel=1e-6)

    def test_bpb_uses_lut_bytes(self, tiny_model):
        """Every piece here is two bytes, so bpb = loss / (2 ln 2)."""
        loss, bpb = sliding_eval(tiny_model, stream(120), TABLES, 32, 8)
        assert bpb == pytest.approx(loss / (2 * np.log(2)))


class TestLedger:
    """The runtime self-check."""

    def test_training_before_scoring_is_caught(self):
        """An update that uses unscored targets raises."""
        ledger = ScoreLedger(10)
        with pytest.raises(LegalityError):
            ledger.record_trained(0, 5)

    def test_scoring_after_training_is_caught(self):
        """Scoring a target that already drove an update raises."""
        ledger = ScoreLedger(10)
        ledger.record_scored(0, 10)
        ledger.record_trained(0, 5)
        with pytest.raises(LegalityError):
            ledger.record_scored(3, 4)

    @pytest.mark.parametrize("spans", [[(0, 5)], [(0, 10), (9, 10)]])
    def test_not_exactly_once_is_caught(self, spans):
        """Missing or repeated scores fail the completeness check."""
        ledger = ScoreLedger(10)
        for lo, hi in spans:
            ledger.record_scored(lo, hi)
        with pytest.raises(LegalityError):
            ledger.check_complete()


class TestTTT:
    """Score-first TTT and dynamic evaluation."""

    CFG = TTTConfig(chunk_tokens=64, lr=0.05, epochs=2, batch_seqs=4)

    def test_score_first_passes_and_changes_the_score(self, tiny_model):
        """Legal TTT passes its self-check and, having trained, differs from plain sliding evaluation."""
        tokens = stream(300)
        plain = sliding_eval(tiny_model, tokens, TABLES, 32, 16)
        adapted = ttt_eval(tiny_model, tokens, TABLES, 32, 16, self.CFG)
        assert adapted[0] != pytest.approx(plain[0], rel=1e-9)

    def test_train_before_score_fails_the_self_check(self, tiny_model):
        """An evaluator that trains on a chunk before scoring it is stopped by the ledger."""
        tokens = stream(300)
        win = plan_windows(len(tokens) - 1, 32, 16)
        ledger = ScoreLedger(len(tokens) - 1)
        params = list(tiny_model.parameters())
        optimizer = torch.optim.SGD(params, lr=0.01)
        # The illegal order, built from the evaluator's own pieces: an update on a chunk nobody has scored yet.
        with pytest.raises(LegalityError, match="before they were scored"):
            train_on_spans(tiny_model, params, optimizer, tokens, [(0, 64)], 2, 1.0, ledger)
        # And the other direction: scoring targets after an update that used them.
        score_windows(tiny_model, tokens, win, np.arange(4), TABLES, Totals(), ledger, 2)
        ledger.record_trained(0, 16)
        with pytest.raises(LegalityError, match="scored after an update"):
            ledger.record_scored(0, 16)

    def test_single_chunk_equals_sliding(self, tiny_model):
        """With one chunk nothing is trained (the last chunk never is), so TTT equals sliding evaluation."""
        tokens = stream(60)
        plain = sliding_eval(tiny_model, tokens, TABLES, 32, 16)
        assert ttt_eval(tiny_model, tokens, TABLES, 32, 16, self.CFG) == pytest.approx(plain, rel=1e-9)

    def test_dynamic_eval_passes_self_check(self, tiny_model):
        """Dynamic evaluation scores every target once and trains only on scored windows."""
        loss, bpb = dynamic_eval(tiny_model, stream(300), TABLES, 32, 16, lr=0.01, batch=2)
        assert np.isfinite(loss) and bpb > 0

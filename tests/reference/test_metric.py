"""Tests for reference/metric.py: byte tables and the bpb formula, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.metric import build_byte_tables, load_byte_tables, loss_and_bpb, target_bytes

PIECES = [("<pad>", "control"), ("<s>", "control"), ("</s>", "control"), ("<unk>", "unknown"),
          ("<0x41>", "byte"), ("\u2581the", "normal"), ("cat", "normal"), ("\u2581", "normal"), ("\u00e9", "normal")]
BOS, BYTE, THE, CAT, SPACE, E_ACUTE = 1, 4, 5, 6, 7, 8


class TestByteTables:
    """The LUT rules of the baseline's build_sentencepiece_luts."""

    @pytest.mark.parametrize("previous,target,expected", [
        (BOS, THE, 3),  # leading space after a boundary token is not counted
        (CAT, THE, 4),  # "▁the" after an ordinary piece: 3 letters + 1 space
        (THE, BYTE, 1),  # byte fallback is one byte
        (CAT, SPACE, 1),  # the bare "▁" piece is its space only
        (CAT, E_ACUTE, 2),  # UTF-8 length, not characters
        (CAT, BOS, 0),  # control pieces are worth nothing
        (CAT, 3, 0),  # unknown too
        (CAT, 20, 0),  # ids beyond the tokenizer (table padded to the model vocabulary)
    ])
    def test_target_bytes(self, previous, target, expected):
        """Each (previous, target) pair is worth the hand-computed number of bytes."""
        tables = build_byte_tables(PIECES, vocab_size=24)
        assert target_bytes(tables, np.array([previous]), np.array([target])).tolist() == [expected]

    def test_torch_path_matches_numpy(self):
        """The torch lookup gives the same bytes as the numpy one."""
        import torch

        tables = build_byte_tables(PIECES, vocab_size=24)
        prev, tgt = np.array([BOS, CAT, THE, CAT]), np.array([THE, THE, BYTE, E_ACUTE])
        expected = target_bytes(tables, prev, tgt).tolist()
        assert target_bytes(tables, torch.tensor(prev), torch.tensor(tgt)).tolist() == expected == [3, 4, 1, 2]

    def test_lut_total_equals_decoded_utf8(self, tiny_dataset):
        """Over a document, LUT bytes equal the UTF-8 length of the decoded (normalised) text."""
        import sentencepiece as spm

        folder, manifest = tiny_dataset
        model = str(folder / manifest["tokenizer"])
        sp = spm.SentencePieceProcessor(model_file=model)
        ids = [1] + sp.encode("It was the best of times, 1984 caf\u00e9s and \u2603 snowmen.")
        tables = load_byte_tables(model)
        total = int(target_bytes(tables, np.array(ids[:-1]), np.array(ids[1:])).sum())
        assert total == len(sp.decode(ids[1:]).encode("utf-8"))


class TestFormula:
    """val_loss and val_bpb from the accumulators."""

    @pytest.mark.parametrize("loss_sum,tokens,nbytes,loss,bpb", [
        (8 * math.log(2), 4, 8, 2 * math.log(2), 1.0),
        (10.0, 10, 5, 1.0, 2 / math.log(2)),
    ])
    def test_loss_and_bpb(self, loss_sum, tokens, nbytes, loss, bpb):
        """bpb = loss_sum / (ln 2 * bytes) and loss = loss_sum / tokens."""
        assert loss_and_bpb(loss_sum, tokens, nbytes) == pytest.approx((loss, bpb))

    def test_nothing_scored_is_an_error(self):
        """Zero bytes cannot give a metric."""
        with pytest.raises(ValueError):
            loss_and_bpb(1.0, 1, 0)

"""The challenge's metric: val_loss in nats per token and val_bpb in bits per byte (challenge-facts section 3).

Bytes come from a lookup table over the SentencePiece pieces, exactly as the baseline's `build_sentencepiece_luts`:
control, unknown and unused pieces are boundary tokens worth 0 bytes; byte-fallback pieces `<0xNN>` are worth 1;
any other piece is worth the UTF-8 length of its text without a leading "▁", plus 1 for that space unless the
previous token is a boundary token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPACE_MARK = "\u2581"  # SentencePiece's visible space


@dataclass(frozen=True)
class ByteTables:
    """Per-token-id byte tables: base bytes, whether a leading space is counted, and boundary flags."""

    base_bytes: np.ndarray  # int16, (V,)
    has_leading_space: np.ndarray  # bool, (V,)
    is_boundary: np.ndarray  # bool, (V,)


def build_byte_tables(pieces: list[tuple[str, str]], vocab_size: int = 0) -> ByteTables:
    """Tables from (piece, kind) pairs, kind in normal/control/unknown/unused/byte; sized max(len, vocab_size)."""
    size = max(len(pieces), vocab_size)
    base = np.zeros(size, dtype=np.int16)
    space = np.zeros(size, dtype=bool)
    boundary = np.ones(size, dtype=bool)  # ids beyond the tokenizer stay boundary tokens worth 0 bytes
    for token_id, (piece, kind) in enumerate(pieces):
        if kind in ("control", "unknown", "unused"):
            continue
        boundary[token_id] = False
        if kind == "byte":
            base[token_id] = 1
            continue
        if piece.startswith(SPACE_MARK):
            space[token_id] = True
            piece = piece[1:]
        base[token_id] = len(piece.encode("utf-8"))
    return ByteTables(base, space, boundary)


def sentencepiece_pieces(sp) -> list[tuple[str, str]]:
    """(piece, kind) for every id of a loaded `sentencepiece.SentencePieceProcessor`."""
    pieces = []
    for token_id in range(sp.vocab_size()):
        if sp.is_control(token_id):
            kind = "control"
        elif sp.is_unknown(token_id):
            kind = "unknown"
        elif sp.is_unused(token_id):
            kind = "unused"
        elif sp.is_byte(token_id):
            kind = "byte"
        else:
            kind = "normal"
        pieces.append((sp.id_to_piece(token_id), kind))
    return pieces


def load_byte_tables(tokenizer_path: str, vocab_size: int = 0) -> ByteTables:
    """Tables for the SentencePiece model at `tokenizer_path`."""
    import sentencepiece as spm

    return build_byte_tables(sentencepiece_pieces(spm.SentencePieceProcessor(model_file=tokenizer_path)), vocab_size)


def target_bytes(tables: ByteTables, previous, targets):
    """Bytes each target token stands for, given the token before it (numpy or torch integer arrays)."""
    if isinstance(targets, np.ndarray):
        prev, tgt = np.asarray(previous, dtype=np.int64), targets.astype(np.int64)
        return tables.base_bytes[tgt].astype(np.int64) + (tables.has_leading_space[tgt] & ~tables.is_boundary[prev])
    import torch  # torch path: index device tensors built once by `torch_tables`

    base, space, boundary = torch_tables(tables, targets.device)
    return base[targets] + (space[targets] & ~boundary[previous]).to(torch.int64)


_TORCH_TABLE_CACHE: dict = {}


def torch_tables(tables: ByteTables, device):
    """The tables as torch tensors on `device`, cached per (tables, device)."""
    import torch

    key = (id(tables), str(device))
    if key not in _TORCH_TABLE_CACHE:
        _TORCH_TABLE_CACHE[key] = (torch.as_tensor(tables.base_bytes.astype(np.int64), device=device),
                                   torch.as_tensor(tables.has_leading_space, device=device),
                                   torch.as_tensor(tables.is_boundary, device=device))
    return _TORCH_TABLE_CACHE[key]


def loss_and_bpb(loss_sum: float, token_count: float, byte_count: float) -> tuple[float, float]:
    """(val_loss, val_bpb) from summed nats, scored tokens and their bytes: bpb = loss_sum / (ln 2 * bytes)."""
    if token_count <= 0 or byte_count <= 0:
        raise ValueError("nothing was scored")
    return loss_sum / token_count, loss_sum / (math.log(2.0) * byte_count)

"""The probe's synthetic dataset and the index that locates recorded rows in it.

Owns the shard and tokenizer files (the challenge's format: random text tokens in BOS-opened documents, so any row
of targets or inputs can be located uniquely in the validation or training stream), the perturbation the C1 run
scores, and StreamIndex, which finds where a flattened batch of rows sits in one stream by rolling keys.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.challenge import SHARD_HEADER_INTS, SHARD_MAGIC, SHARD_VERSION

VOCAB = 32  # small enough for the C2 counterfactual sum (one run per token), large enough to locate rows
KEY = 8  # tokens per locating key: 32^8 keys against a few thousand positions, collisions negligible
VAL_TOKENS = 65537  # 65,536 targets: two chunks of the 32,768-token TTT chunk many scripts hard-code
TRAIN_TOKENS = 32768
BOS, FIRST_TEXT = 1, 4  # the challenge's tokenizers: pad 0, bos 1, eos 2, unk 3, then text pieces
DOC_LEN = (200, 2500)  # document lengths of the synthetic streams (min, max exclusive)
DATA_SEED = SHARD_MAGIC  # the synthetic streams' seed (any fixed value; kept so that probe results stay put)


# -----------------------------------------------------------------------------
# The synthetic dataset

def _write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(SHARD_HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, len(tokens)
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def _write_tokenizer(folder: Path, vocab: int, data_path: Path | None) -> Path:
    """A SentencePiece model with exactly `vocab` pieces (byte tables need one); a user's own when it fits."""
    import sentencepiece as spm

    if data_path is not None:
        for cand in sorted(Path(data_path).rglob(f"*{vocab}_bpe.model")):
            return cand
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), size=rng.integers(1, 7))) for _ in range(300)]
    text = "\n".join(" ".join(rng.choice(words, size=12)) for _ in range(400))
    corpus = folder / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    prefix = folder / f"fineweb_{vocab}_bpe"
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=vocab,
                                   model_type="bpe", character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
                                   minloglevel=2)
    return prefix.with_suffix(".model")


@dataclass
class Dataset:
    root: Path
    data_dir: Path
    tokenizer: Path
    val: np.ndarray
    train: np.ndarray

    def variant_dir(self, name: str, val: np.ndarray) -> Path:
        """A dataset folder for one variant: the same training shard, its own validation stream.

        Laid out as the challenge's data root (`<root>/datasets/fineweb10B_sp<V>`, `<root>/tokenizers/...`) so
        scripts that take DATA_DIR (the root) find the same files as those that take DATA_PATH/TOKENIZER_PATH."""
        root = self.root / "variants" / name
        d = root / "datasets" / self.data_dir.name
        d.mkdir(parents=True, exist_ok=True)
        _write_shard(d / "fineweb_train_000000.bin", self.train)
        _write_shard(d / "fineweb_val_000000.bin", val)
        (root / "tokenizers").mkdir(exist_ok=True)
        shutil.copyfile(self.tokenizer, root / "tokenizers" / f"fineweb_{VOCAB}_bpe.model")
        return d


def _documents(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random text tokens cut into documents of DOC_LEN tokens, each opened by BOS, as the challenge's shards are
    (per-document evaluations and TTT see realistic documents, not a BOS every VOCAB tokens)."""
    out = rng.integers(FIRST_TEXT, VOCAB, n).astype(np.int64)
    pos = 0
    while pos < n:
        out[pos] = BOS
        pos += int(rng.integers(*DOC_LEN))
    return out


def perturb_text(stream: np.ndarray, start: int, seed: int = 7) -> np.ndarray:
    """A copy with every text token from `start` on changed to another text token; BOS positions stay, so the
    document boundaries (and any batching by document length) are those of the original stream."""
    out = stream.copy()
    rng = np.random.default_rng(seed)
    tail = out[start:]
    text = tail != BOS
    shift = rng.integers(1, VOCAB - FIRST_TEXT, len(tail))
    tail[text] = FIRST_TEXT + (tail[text] - FIRST_TEXT + shift[text]) % (VOCAB - FIRST_TEXT)
    return out


def build_dataset(root: Path, data_path: Path | None, val_tokens: int = VAL_TOKENS) -> Dataset:
    rng = np.random.default_rng(DATA_SEED)
    val = _documents(rng, val_tokens)
    train = _documents(rng, TRAIN_TOKENS)
    tok = _write_tokenizer(root / "tokenizers", VOCAB, data_path)
    data_dir = root / "datasets" / f"fineweb10B_sp{VOCAB}"
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_shard(data_dir / "fineweb_train_000000.bin", train)
    _write_shard(data_dir / "fineweb_val_000000.bin", val)
    return Dataset(root, data_dir, tok, val, train)


# -----------------------------------------------------------------------------
# Locating recorded rows in the token streams

class StreamIndex:
    """Finds where a flattened batch of rows (targets or inputs) sits in one token stream."""

    def __init__(self, stream: np.ndarray) -> None:
        self.stream = stream
        keys = _rolling_keys(stream)
        order = np.argsort(keys, kind="stable")
        self.keys, self.pos = keys[order], order
        dup = np.zeros(len(keys), bool)
        dup[1:] |= self.keys[1:] == self.keys[:-1]
        dup[:-1] |= self.keys[1:] == self.keys[:-1]
        self.keys, self.pos = self.keys[~dup], self.pos[~dup]  # ambiguous keys locate nothing

    def locate(self, values: np.ndarray) -> np.ndarray:
        """Stream position of each element (-1 where not found); -1 entries of `values` are masked targets."""
        out = np.full(len(values), -1, dtype=np.int64)
        if len(values) < KEY or not len(self.keys):
            return out
        keys = _rolling_keys(values)
        masked = np.concatenate([[0], np.cumsum(values < 0)])
        valid = masked[KEY:KEY + len(keys)] - masked[:len(keys)] == 0  # no ignored target inside the key
        idx = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        hit = valid & (self.keys[idx] == keys)
        out[:len(keys)][hit] = self.pos[idx[hit]]
        for _ in range(KEY - 1):  # the tail of each row (fewer than KEY tokens left) follows its head
            follow = np.zeros(len(values), bool)
            follow[1:] = (out[1:] < 0) & (out[:-1] >= 0) & (values[1:] >= 0)
            idx = np.nonzero(follow)[0]
            if not len(idx):
                break
            nxt = out[idx - 1] + 1
            ok = nxt < len(self.stream)
            ok[ok] &= self.stream[nxt[ok]] == values[idx[ok]]
            out[idx[ok]] = nxt[ok]
        return out


def _rolling_keys(a: np.ndarray) -> np.ndarray:
    """int64 key of each window of KEY tokens (base VOCAB); tokens outside the vocabulary fold in harmlessly."""
    n = len(a) - KEY + 1
    if n <= 0:
        return np.zeros(0, np.int64)
    b = np.where(a < 0, VOCAB, np.minimum(a, 4 * VOCAB)).astype(np.int64)
    keys = np.zeros(n, np.int64)
    for j in range(KEY):
        keys = keys * (4 * VOCAB + 1) + b[j:j + n]
    return keys

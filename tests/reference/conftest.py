"""Fixtures for the reference trainer tests: a tiny real-text dataset built in seconds, and a tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny.py, shared with the worker script that tests launch
from tiny import tiny_gpt  # noqa: E402

# A few KB of real English prose (public-domain opening lines), repeated with variations into small documents.
PROSE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. "
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
    "I thought I would sail about a little and see the watery part of the world. "
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
    "of a wife. Happy families are all alike; every unhappy family is unhappy in its own way. "
    "In the beginning God created the heaven and the earth. And the earth was without form, and void. "
)


def tiny_documents(n: int = 40) -> list[str]:
    """`n` short documents cut from PROSE at different offsets, some with digits."""
    words = PROSE.split()
    return [" ".join(words[i % len(words):] + words[:i % len(words)]) + f" Chapter {i}." for i in range(n)]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 384-piece tokenizer and shards built from tiny_documents, in the challenge's layout."""
    from reference.data import build_local_dataset

    out = tmp_path_factory.mktemp("data")
    manifest = build_local_dataset(out, 384, 4, docs=tiny_documents(), source="test prose", shard_tokens=4000)
    return out / "datasets" / manifest["name"], manifest


@pytest.fixture
def tiny_model():
    """A 2-layer, 32-wide GPT with random (not zero) projections so its outputs depend on the weights."""
    return tiny_gpt()

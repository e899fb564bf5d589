"""The challenge's token shard format: read, write and locate `fineweb_{train,val}_NNNNNN.bin` files.

A shard is 256 little-endian int32 (magic 20240520, version 1, token count N, zeros) followed by N little-endian
uint16 token ids, so the file is exactly 1024 + 2N bytes (challenge-facts section 1.1).
"""

from __future__ import annotations

import glob
import os

import numpy as np

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4


class ShardError(ValueError):
    """A file that claims to be a shard but does not follow the format."""


def write_shard(path: str, tokens) -> int:
    """Write `tokens` (ints in [0, 65535]) as one shard; returns the file size in bytes."""
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ShardError(f"{path}: tokens must be one-dimensional")
    if len(array) >= 2**31:
        raise ShardError(f"{path}: too many tokens for one shard ({len(array)})")
    if len(array) and (int(array.min()) < 0 or int(array.max()) > 65535):
        raise ShardError(f"{path}: token ids must fit in uint16 (vocabularies up to 65,536)")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, len(array)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:  # write-then-rename: a crash never leaves a half shard under the real name
        f.write(header.tobytes())
        f.write(array.astype("<u2").tobytes())
    os.replace(tmp, path)
    return HEADER_BYTES + 2 * len(array)


def read_shard(path: str) -> np.ndarray:
    """Read one shard as a uint16 array, rejecting a short header, wrong magic/version or wrong size."""
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: {size} bytes is shorter than the 1024-byte header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise ShardError(f"{path}: bad magic/version {int(header[0])}/{int(header[1])}")
    count = int(header[2])
    if size != HEADER_BYTES + 2 * count:
        raise ShardError(f"{path}: size {size} != 1024 + 2 x {count} tokens")
    return np.fromfile(path, dtype="<u2", count=count, offset=HEADER_BYTES)


def shard_paths(pattern: str) -> list[str]:
    """Sorted shard files matching `pattern`, without CaseOps byte sidecars (`_bytes_` in the name)."""
    return [p for p in sorted(glob.glob(pattern)) if "_bytes_" not in os.path.basename(p)]


def load_tokens(pattern: str) -> np.ndarray:
    """Every shard matching `pattern`, concatenated in sorted order (the validation stream)."""
    paths = shard_paths(pattern)
    if not paths:
        raise ShardError(f"no shards match {pattern}")
    return np.concatenate([read_shard(p) for p in paths])


class TokenStream:
    """Deterministic stream over the sorted train shards, wrapping around (the baseline's loader)."""

    def __init__(self, pattern: str):
        self.paths = shard_paths(pattern)
        if not self.paths:
            raise ShardError(f"no shards match {pattern}")
        self.file_index, self.position = 0, 0
        self.tokens = read_shard(self.paths[0])

    def take(self, n: int) -> np.ndarray:
        """The next `n` tokens of the stream."""
        parts, remaining = [], n
        while remaining > 0:
            if self.position >= len(self.tokens):
                self.file_index = (self.file_index + 1) % len(self.paths)
                self.tokens, self.position = read_shard(self.paths[self.file_index]), 0
                continue
            piece = self.tokens[self.position:self.position + remaining]
            parts.append(piece)
            self.position += len(piece)
            remaining -= len(piece)
        return np.concatenate(parts)

    def state(self) -> tuple[int, int]:
        """Where the stream stands, to restore after untimed warm-up steps."""
        return self.file_index, self.position

    def restore(self, state: tuple[int, int]) -> None:
        """Go back to a position returned by `state()`."""
        if state[0] != self.file_index:
            self.tokens = read_shard(self.paths[state[0]])
        self.file_index, self.position = state

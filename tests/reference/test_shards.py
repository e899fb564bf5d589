"""Tests for reference/shards.py: the challenge's shard format."""

from __future__ import annotations

import numpy as np
import pytest

from reference.shards import HEADER_BYTES, ShardError, TokenStream, load_tokens, read_shard, write_shard


class TestShardFormat:
    """Round trip and validation of single shards."""

    @pytest.mark.parametrize("tokens", [[], [0], [1, 2, 3, 65535], list(range(1000))])
    def test_round_trip(self, tmp_path, tokens):
        """Tokens written are the tokens read, and the size is exactly 1024 + 2N."""
        path = str(tmp_path / "fineweb_val_000000.bin")
        size = write_shard(path, tokens)
        assert size == HEADER_BYTES + 2 * len(tokens) == (tmp_path / "fineweb_val_000000.bin").stat().st_size
        assert read_shard(path).tolist() == list(tokens)

    def test_header_fields(self, tmp_path):
        """The header carries magic 20240520, version 1 and the token count."""
        path = str(tmp_path / "s.bin")
        write_shard(path, [5, 6, 7])
        assert np.fromfile(path, dtype="<i4", count=3).tolist() == [20240520, 1, 3]

    @pytest.mark.parametrize("corrupt", ["magic", "version", "truncated", "short_header", "extra"])
    def test_reader_rejects_bad_files(self, tmp_path, corrupt):
        """A wrong magic, version or size is refused with ShardError."""
        path = tmp_path / "s.bin"
        write_shard(str(path), [1, 2, 3, 4])
        data = bytearray(path.read_bytes())
        if corrupt == "magic":
            data[0] ^= 1
        elif corrupt == "version":
            data[4] = 2
        elif corrupt == "truncated":
            data = data[:-2]
        elif corrupt == "short_header":
            data = data[:100]
        else:
            data += b"\0\0"
        path.write_bytes(bytes(data))
        with pytest.raises(ShardError):
            read_shard(str(path))

    @pytest.mark.parametrize("tokens", [[-1], [65536]])
    def test_writer_rejects_out_of_range_ids(self, tmp_path, tokens):
        """Ids outside uint16 cannot be written."""
        with pytest.raises(ShardError):
            write_shard(str(tmp_path / "s.bin"), tokens)


class TestStreams:
    """Concatenation and the wrapping train stream."""

    def test_load_tokens_sorted_and_skips_sidecars(self, tmp_path):
        """Val shards concatenate in name order and `_bytes_` sidecars are ignored."""
        write_shard(str(tmp_path / "fineweb_val_000001.bin"), [3, 4])
        write_shard(str(tmp_path / "fineweb_val_000000.bin"), [1, 2])
        write_shard(str(tmp_path / "fineweb_val_bytes_000000.bin"), [9, 9])
        assert load_tokens(str(tmp_path / "fineweb_val_*.bin")).tolist() == [1, 2, 3, 4]

    def test_stream_wraps_and_restores(self, tmp_path):
        """The train stream crosses shards, wraps around, and restores a saved position."""
        write_shard(str(tmp_path / "fineweb_train_000000.bin"), [1, 2, 3])
        write_shard(str(tmp_path / "fineweb_train_000001.bin"), [4, 5])
        stream = TokenStream(str(tmp_path / "fineweb_train_*.bin"))
        assert stream.take(4).tolist() == [1, 2, 3, 4]
        state = stream.state()
        assert stream.take(3).tolist() == [5, 1, 2]
        stream.restore(state)
        assert stream.take(1).tolist() == [5]

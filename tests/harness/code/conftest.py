"""Fixtures for the code-unwrapping, size and layout tests: folder builders, shim encoders, stand-in log runs."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path

import brotli
import pytest
import zstandard

from harness.submission.folder import load_submission

RAW_FILTERS = [{"id": lzma.FILTER_LZMA2}]

# name -> (encode(bytes) -> bytes, expression template with {x} for the encoded literal, imports)
LAYERS = {
    "b85": (base64.b85encode, "base64.b85decode({x})", "import base64"),
    "b64": (base64.b64encode, "base64.b64decode({x})", "import base64"),
    "a85": (base64.a85encode, "base64.a85decode({x})", "import base64"),
    "b32": (base64.b32encode, "base64.b32decode({x})", "import base64"),
    "hex": (lambda b: b.hex().encode(), "bytes.fromhex({x}.decode())", ""),
    "lzma": (lzma.compress, "lzma.decompress({x})", "import lzma"),
    "lzma_raw": (lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=RAW_FILTERS),
                 'lzma.decompress({x}, format=lzma.FORMAT_RAW, filters=[{{"id": lzma.FILTER_LZMA2}}])',
                 "import lzma"),
    "zlib": (zlib.compress, "zlib.decompress({x})", "import zlib"),
    "gzip": (gzip.compress, "gzip.decompress({x})", "import gzip"),
    "bz2": (bz2.compress, "bz2.decompress({x})", "import bz2"),
    "brotli": (brotli.compress, "brotli.decompress({x})", "import brotli"),
    "zstd": (lambda b: zstandard.ZstdCompressor().compress(b), "zstandard.ZstdDecompressor().decompress({x})",
             "import zstandard"),
}


def wrap(code: str, layers: list[str]) -> str:
    """A self-extracting script that runs CODE after undoing LAYERS (applied in order, first layer innermost)."""
    data = code.encode()
    for name in layers:
        data = LAYERS[name][0](data)
    imports = dict.fromkeys(LAYERS[name][2] for name in layers if LAYERS[name][2])
    return "\n".join(imports) + f"\nexec({_chain(layers).replace('PAYLOAD', repr(data))})\n"


def _chain(layers: list[str]) -> str:
    expr = "PAYLOAD"
    for name in reversed(layers):
        expr = LAYERS[name][1].format(x=expr)
    return expr


@dataclass
class FakeRun:
    """Stand-in for harness.submission.logs.LogRun with the fields check_size reads."""

    path: str
    seed: str | None
    model_bytes: int | None = None
    total_size_bytes: int | None = None
    code_size_bytes: int | None = None
    code_size_compressed_bytes: int | None = None
    is_run_log: bool = True


COMPLETE = {
    "README.md": "# Example\n",
    "submission.json": '{"val_bpb": 1.2}\n',
    "train_seed42.log": "seed:42\n",
    "train_gpt.py": "print('hello')\n",
}


@pytest.fixture
def folder(make_submission):
    """Factory: write {relative path: text | bytes} into a dated folder and return its Path."""

    def _make(files: dict[str, str | bytes], name: str = "2026-04-01_Example") -> Path:
        return make_submission(files, name)

    return _make


@pytest.fixture
def submission(folder):
    """Factory: like `folder`, but returns the loaded Submission."""

    def _make(files: dict[str, str | bytes], name: str = "2026-04-01_Example"):
        return load_submission(folder(files, name))

    return _make


@pytest.fixture(scope="session")
def zero_bomb() -> bytes:
    """64 MiB of zeros as raw LZMA2 (about 10 KB): twice the decoder's cap."""
    return lzma.compress(bytes(64 << 20), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 0}])

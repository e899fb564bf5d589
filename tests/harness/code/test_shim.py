"""harness.submission.shim: static decoding of self-extracting scripts, bombs refused, never raising, never executing."""

from __future__ import annotations

import base64
import lzma
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.submission.shim import MAX_STAGE_BYTES, decode_shim

from .conftest import LAYERS, wrap

CODE = "import torch\n\ndef main():\n    print('decoded body')\n\nmain()\n"


@pytest.mark.parametrize("layers", [
    ["lzma_raw", "b85"], ["lzma", "b85"], ["zlib", "b64"], ["brotli", "b85"], ["zstd", "b85"], ["gzip", "a85"],
    ["bz2", "b32"], ["hex"], ["lzma", "b64", "zlib", "b85"],
])
def test_known_layers_decode(layers):
    """Each supported decoder chain yields the original code and records the decoder steps."""
    result = decode_shim(wrap(CODE, layers))
    assert result.text == CODE and not result.problems
    assert len([s for s in result.layers[0].steps if s != "bytes.decode"]) == len(layers)


def test_real_record_idiom_with_aliases():
    """`import lzma as L, base64 as B` with FORMAT_RAW and a filter list literal decodes like the records do."""
    blob = base64.b85encode(lzma.compress(CODE.encode(), format=lzma.FORMAT_RAW,
                                          filters=[{"id": lzma.FILTER_LZMA2}])).decode()
    half = len(blob) // 2
    source = (f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{blob[:half]}""{blob[half:]}"),'
              f'format=L.FORMAT_RAW,filters=[{{"id":L.FILTER_LZMA2}}]))\n')
    result = decode_shim(source)
    assert result.text == CODE and result.layers[0].steps == ("base64.b85decode", "lzma.decompress(RAW)")


def test_names_bound_to_literals_are_followed():
    """A payload held in a module-level name, and a decoder imported with from-import, still decode."""
    blob = base64.b64encode(lzma.compress(CODE.encode())).decode()
    source = f"from lzma import decompress\nimport base64\nP = {blob!r}\nexec(decompress(base64.b64decode(P)).decode())\n"
    assert decode_shim(source).text == CODE


@pytest.mark.parametrize("rebinding", [
    "S = S.decode()\nexec(compile(S, 'x.py', 'exec'))\n",  # the payload name rebound from itself, then compiled
    "T = S\nS = T.decode()\nexec(S)\n",  # through a second name
])
def test_a_name_rebound_from_itself_means_its_earlier_value_inside(rebinding):
    """`S = L.decompress(...)` then `S = S.decode()`: the second binding's S is the first one's value."""
    blob = base64.b85encode(lzma.compress(CODE.encode())).decode()
    result = decode_shim(f"import lzma as L, base64 as B\nS = L.decompress(B.b85decode('{blob}'))\n{rebinding}")
    assert result.text == CODE and not result.problems


def test_nested_shims_are_unwrapped_to_the_innermost():
    """A shim whose payload is itself a shim is decoded again; every layer is reported."""
    result = decode_shim(wrap(wrap(CODE, ["zlib", "b85"]), ["lzma_raw", "b64"]))
    assert result.text == CODE
    assert [layer.depth for layer in result.layers] == [0, 1]
    assert len(result.decoded) == 2


def test_decompression_bomb_is_refused_fast(zero_bomb):
    """A raw-LZMA2 payload of 64 MiB of zeros is refused at the cap with a clear message, within a second or so."""
    source = ('import lzma as L,base64 as B\nexec(L.decompress(B.b85decode(%r),format=L.FORMAT_RAW,'
              'filters=[{"id":L.FILTER_LZMA2}]))\n' % base64.b85encode(zero_bomb).decode())
    started = time.perf_counter()
    result = decode_shim(source)
    assert time.perf_counter() - started < 3.0
    assert result.text is None
    assert any(f"beyond {MAX_STAGE_BYTES:,} bytes" in p for p in result.problems)


@pytest.mark.parametrize("source, fragment", [
    ("import lzma, base64\nexec(lzma.decompress(base64.b85decode('not base85 at all ~~~')))\n", "could not decode"),
    ("import lzma, base64\nexec(lzma.decompress(base64.b64decode('aGVsbG8=')))\n", "could not decode"),
    ("import zlib\nexec(zlib.decompress(get_payload()))\n", "could not decode"),
    ("import base64\nexec(base64.b64decode('//79'))\n", "not utf-8"),
])
def test_undecodable_shims_are_problems(source, fragment):
    """A shim that cannot be decoded statically gives a problem naming the line, not an exception."""
    result = decode_shim(source)
    assert result.text is None
    assert any(fragment in p.lower() and ":2:" in p for p in result.problems)


@pytest.mark.parametrize("source", [
    "exec(open(__file__.replace('train_gpt.py', 'other.py')).read())\n",
    "code = 'print(1)'\nexec(code)\n",
    "print('no exec here')\n",
    "def f(:\n",
])
def test_non_shims_are_not_decoded(source):
    """exec(open()) loaders, plain literal exec, ordinary code and broken code are not shims and raise nothing."""
    result = decode_shim(source)
    assert result.text is None and not result.layers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    """Arbitrary text never makes the decoder raise."""
    decode_shim(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300),
       layers=st.lists(st.sampled_from(sorted(LAYERS)), min_size=1, max_size=4))
def test_round_trip_through_random_layers(code, layers):
    """Random text wrapped in randomly chosen encode layers decodes back to itself."""
    result = decode_shim(wrap(code, layers))
    assert result.text == code

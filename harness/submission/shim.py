"""Static decoder of self-extracting code: `exec(lzma.decompress(base64.b85decode("...")))` and its relatives.

Nothing is ever executed. The argument of `exec` / `eval` / `compile` is evaluated over a restricted expression
tree: string and bytes literals, names bound to such values earlier in the module, module aliases
(`import lzma as L`), and a fixed set of pure decoders (base64, hex, codecs, lzma incl. raw LZMA2 filters, zlib,
gzip, bz2, brotli, zstandard). Decoding repeats while the result is itself a shim. Every decompression is capped
(`MAX_STAGE_BYTES` per stage, `MAX_TOTAL_BYTES` per chain) with incremental decompressors, so a decompression bomb is
refused after at most the cap, never allocated in full.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import io
import lzma
import zlib
from dataclasses import dataclass, field

from rules.parsing import SourceParseError, parse_python

MAX_STAGE_BYTES = 32_000_000  # no real script comes near this (the largest decoded record is ~160 KB)
MAX_TOTAL_BYTES = 32_000_000
MAX_DEPTH = 8  # nested shims followed at most this deep
EXEC_FUNCS = {"exec", "eval", "compile"}

# Names whose presence in an exec argument means "this was meant to be a shim": failing to decode it is a problem.
_DECODER_HINTS = ("decompress", "decode", "b85", "b64", "a85", "b32", "b16", "unhexlify", "fromhex", "Decompressor")


class ShimError(Exception):
    """The expression is not statically decodable (message says why)."""


class Refused(ShimError):
    """Decoding stopped on purpose: the output would exceed the cap."""


@dataclass(frozen=True)
class Layer:
    """One decoded exec/eval site: where it is, what it decoded with, sizes in and out."""

    line: int
    depth: int  # 0 = in the shipped text, 1 = inside the first decoded layer, ...
    steps: tuple[str, ...]  # decoder names, innermost first, e.g. ("base64.b85decode", "lzma.decompress(RAW)")
    encoded_bytes: int
    decoded_bytes: int


@dataclass
class DecodeResult:
    """The innermost decoded code (None when nothing was decoded), every layer, every decoded text, problems."""

    text: str | None = None
    layers: list[Layer] = field(default_factory=list)
    decoded: list[tuple[int, str]] = field(default_factory=list)  # (depth, text) for every decoded payload
    problems: list[str] = field(default_factory=list)


class _Module:
    """A module object seen through an alias: `import lzma as L` binds L to _Module("lzma")."""

    def __init__(self, name: str) -> None:
        self.name = name


class _Func:
    """A known callable by qualified name, optionally bound to a receiver (for methods)."""

    def __init__(self, name: str, receiver: object = None) -> None:
        self.name = name
        self.receiver = receiver


class _Budget:
    """Bytes left for decompressed output across one chain of layers."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise Refused(f"refused: would decompress beyond {MAX_TOTAL_BYTES:,} bytes in total")


_LZMA_CONSTANTS = {name: getattr(lzma, name) for name in dir(lzma) if name.isupper()}
_ZLIB_CONSTANTS = {name: getattr(zlib, name) for name in dir(zlib) if name.isupper() and isinstance(getattr(zlib, name), int)}
_MODULE_CONSTANTS = {"lzma": _LZMA_CONSTANTS, "zlib": _ZLIB_CONSTANTS}


def decode_shim(text: str, filename: str = "train_gpt.py", tree: ast.Module | None = None,
                calls: list[ast.Call] | None = None) -> DecodeResult:
    """Decode every statically decodable exec/eval/compile payload in TEXT, following nested shims.

    TREE (the parsed TEXT) and CALLS (every ast.Call in it) may be passed by a caller that already has them.
    """
    result = DecodeResult()
    budget = _Budget(MAX_TOTAL_BYTES)
    try:
        _decode_into(result, text, filename, tree, 0, budget, calls)
    except RecursionError:
        result.problems.append(f"{filename}: expression nesting too deep to decode")
    return result


def _decode_into(result: DecodeResult, text: str, filename: str, tree: ast.Module | None, depth: int,
                 budget: _Budget, calls: list[ast.Call] | None = None) -> None:
    if tree is None:
        try:
            tree = parse_python(text, filename)
        except SourceParseError as exc:
            if depth:  # a decoded payload that is not Python is worth reporting; the shipped file is codeset's job
                result.problems.append(f"decoded layer {depth} of {filename} is not valid Python: {exc.message}")
            return
    exec_calls = _exec_calls(tree, calls)
    if not exec_calls:
        return
    env = _Environment(tree)
    for call in exec_calls:
        arg = call.args[0] if call.args else None
        if arg is None or _reads_a_file(arg):
            continue
        try:
            steps: list[str] = []
            value = env.evaluate(arg, steps, budget)
            if isinstance(value, (bytes, bytearray)):
                payload = bytes(value).decode("utf-8")
            elif isinstance(value, str):
                payload = value
            else:
                raise ShimError(f"evaluates to {type(value).__name__}, not code")
        except UnicodeDecodeError:
            result.problems.append(f"{filename}:{call.lineno}: decoded payload is not UTF-8 text")
            continue
        except Refused as exc:
            result.problems.append(f"{filename}:{call.lineno}: {exc}")
            continue
        except (ShimError, ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError, EOFError,
                lzma.LZMAError, zlib.error, OSError, binascii.Error) as exc:
            if _looks_like_decoder(arg):
                result.problems.append(f"{filename}:{call.lineno}: could not decode the exec payload statically: "
                                       f"{_short(exc)}")
            continue
        if not steps:  # exec of a plain literal string: code, but not a shim
            continue
        result.layers.append(Layer(call.lineno, depth, tuple(steps), _source_len(arg), len(payload.encode())))
        result.decoded.append((depth + 1, payload))
        result.text = payload
        if depth + 1 >= MAX_DEPTH:
            result.problems.append(f"{filename}: shims nested deeper than {MAX_DEPTH} layers; stopped decoding")
            return
        _decode_into(result, payload, filename, None, depth + 1, budget)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _source_len(node: ast.AST) -> int:
    """Bytes of the literals feeding NODE: the encoded size of the payload as written."""
    total = 0
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, (str, bytes)):
            total += len(sub.value)
    return total


def _exec_calls(tree: ast.Module, calls: list[ast.Call] | None) -> list[ast.Call]:
    nodes = calls if calls is not None else [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    found = [n for n in nodes if isinstance(n.func, ast.Name) and n.func.id in EXEC_FUNCS]
    found.sort(key=lambda c: (c.lineno, c.col_offset))
    return found


def _reads_a_file(node: ast.AST) -> bool:
    """exec(open(...).read()) and friends are loaders, resolved by codeset, not shims."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name) and func.id == "open":
                return True
            if isinstance(func, ast.Attribute) and func.attr in {"read_text", "read_bytes", "read"}:
                return True
    return False


def _looks_like_decoder(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        name = sub.attr if isinstance(sub, ast.Attribute) else sub.id if isinstance(sub, ast.Name) else ""
        if any(hint in name for hint in _DECODER_HINTS):
            return True
    return False


class _Environment:
    """Module-level bindings usable by the evaluator: literal assignments and imports. A name means its last
    binding, except inside the value of one of its bindings (`S = S.decode()`), where it means the one before."""

    def __init__(self, tree: ast.Module) -> None:
        self.bindings: dict[str, list[ast.AST]] = {}
        self.using: dict[str, int] = {}  # name -> index of its binding being evaluated now
        self.values: dict[str, object] = {}
        for stmt in tree.body:
            self._bind(stmt)

    def _bind(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                top = alias.name.split(".")[0]
                self.values[alias.asname or top] = _Module(alias.name if alias.asname else top)
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                constants = _MODULE_CONSTANTS.get(stmt.module, {})
                self.values[alias.asname or alias.name] = (
                    constants[alias.name] if alias.name in constants else _Func(f"{stmt.module}.{alias.name}"))
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            self.bindings.setdefault(stmt.targets[0].id, []).append(stmt.value)
            self.values.pop(stmt.targets[0].id, None)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            self.bindings.setdefault(stmt.target.id, []).append(stmt.value)

    def _name(self, node: ast.Name, ev) -> object:
        """A name's value: a module or constant seen imported, a literal binding (evaluated), or a builtin."""
        if node.id in self.values:
            return self.values[node.id]
        if node.id in self.bindings:
            stack = self.bindings[node.id]
            before = self.using.get(node.id)
            index = (len(stack) if before is None else before) - 1  # also guards against self-reference loops
            if index < 0:
                raise ShimError(f"name {node.id!r} is used before its first binding")
            self.using[node.id] = index
            try:
                return ev(stack[index])
            finally:
                if before is None:
                    del self.using[node.id]
                else:
                    self.using[node.id] = before
        if node.id in {"bytes", "str", "bytearray", "__import__"}:
            return _Func(f"builtins.{node.id}")
        raise ShimError(f"name {node.id!r} is not a literal binding")

    def evaluate(self, node: ast.AST, steps: list[str], budget: _Budget, depth: int = 0) -> object:
        if depth > 60:
            raise ShimError("expression too deep")
        ev = lambda n: self.evaluate(n, steps, budget, depth + 1)  # noqa: E731
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, bytes, int, float, bool)) or node.value is None:
                return node.value
            raise ShimError("unsupported constant")
        if isinstance(node, ast.Name):
            return self._name(node, ev)
        if isinstance(node, ast.Attribute):
            return _attribute(ev(node.value), node.attr)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = ev(node.left), ev(node.right)
            if isinstance(left, (str, bytes)) and type(left) is type(right):
                return left + right
            raise ShimError("unsupported concatenation")
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ShimError("dict unpacking")
            return {ev(k): ev(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call):
            func = ev(node.func)
            if not isinstance(func, _Func):
                raise ShimError("call of an unknown function")
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise ShimError("star arguments")
            args = [ev(a) for a in node.args]
            kwargs = {k.arg: ev(k.value) for k in node.keywords}
            return _call(func, args, kwargs, steps, budget)
        raise ShimError(f"unsupported expression {type(node).__name__}")


def _attribute(base: object, attr: str) -> object:
    """`base.attr` for the values the evaluator knows: module constants and functions, methods of data."""
    if isinstance(base, _Module):
        constants = _MODULE_CONSTANTS.get(base.name, {})
        if attr in constants:
            return constants[attr]
        return _Func(f"{base.name}.{attr}")
    if isinstance(base, _Func) and base.name.startswith("builtins."):
        return _Func(f"{base.name[len('builtins.'):]}.{attr}")
    if isinstance(base, (str, bytes, bytearray, _Decompressor)):
        return _Func(attr, receiver=base)
    raise ShimError(f"attribute .{attr} of an unsupported value")


class _Decompressor:
    """Stand-in for zstandard.ZstdDecompressor() / brotli.Decompressor() objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _canonical(name: str) -> str:
    return name.replace("zstd.", "zstandard.").replace("builtins.", "")


def _call(func: _Func, args: list, kwargs: dict, steps: list[str], budget: _Budget) -> object:
    name = _canonical(func.name)
    recv = func.receiver
    if recv is not None:
        return _method(recv, name, args, kwargs, steps, budget)
    if name == "__import__" and args and isinstance(args[0], str):
        return _Module(args[0])
    if name in _B64:
        steps.append(name)
        return _B64[name](_as_bytes(args[0]))
    if name in {"bytes.fromhex", "binascii.unhexlify", "binascii.a2b_hex"}:
        steps.append(name)
        return bytes.fromhex(args[0]) if isinstance(args[0], str) else binascii.unhexlify(args[0])
    if name == "codecs.decode":
        encoding = (args[1] if len(args) > 1 else kwargs.get("encoding", "utf-8")).lower().replace("-", "_")
        if encoding in {"base64", "base_64", "hex", "hex_codec", "base64_codec", "utf_8", "utf8", "rot13", "rot_13",
                        "zlib", "zlib_codec", "bz2", "bz2_codec"}:
            if encoding.startswith(("zlib", "bz2")):
                return _call(_Func(f"{encoding.split('_')[0]}.decompress"), [args[0]], {}, steps, budget)
            steps.append(f"codecs.decode({encoding})")
            return codecs.decode(args[0], encoding)
        raise ShimError(f"codec {encoding!r} not supported")
    if name in {"bytes", "bytearray", "str"}:
        if name == "str" and len(args) >= 2 and isinstance(args[0], (bytes, bytearray)):
            steps.append("str(bytes)")
            return bytes(args[0]).decode(args[1])
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray, str)) and name != "str":
            return bytes(args[0]) if not isinstance(args[0], str) else args[0].encode()
        raise ShimError(f"unsupported {name}() call")
    if name == "lzma.decompress":
        return _lzma(args, kwargs, steps, budget)
    if name in {"zlib.decompress", "gzip.decompress", "bz2.decompress", "brotli.decompress",
                "zstandard.decompress"}:
        kind = name.split(".")[0]
        steps.append(name)
        wbits = (args[1] if len(args) > 1 else kwargs.get("wbits", zlib.MAX_WBITS)) if kind == "zlib" else None
        return _capped(kind, _as_bytes(args[0]), budget, wbits=wbits)
    if name in {"zstandard.ZstdDecompressor", "brotli.Decompressor"}:
        return _Decompressor(name.split(".")[0])
    raise ShimError(f"{name}() is not a known pure decoder")


def _method(recv: object, name: str, args: list, kwargs: dict, steps: list[str], budget: _Budget) -> object:
    if isinstance(recv, _Decompressor):
        if name in {"decompress", "process"} and args:
            steps.append(f"{recv.kind}.{name}")
            return _capped(recv.kind, _as_bytes(args[0]), budget)
        raise ShimError(f"{recv.kind} decompressor method .{name} not supported")
    if isinstance(recv, (bytes, bytearray)) and name == "decode":
        encoding = args[0] if args else kwargs.get("encoding", "utf-8")
        steps.append("bytes.decode")
        return bytes(recv).decode(encoding)
    if isinstance(recv, str) and name == "encode":
        return recv.encode(args[0] if args else kwargs.get("encoding", "utf-8"))
    if isinstance(recv, str) and name in {"strip", "replace", "join"}:
        return getattr(recv, name)(*args)
    raise ShimError(f"method .{name} not supported")


_B64 = {
    "base64.b85decode": base64.b85decode,
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.a85decode": base64.a85decode,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.decodebytes": base64.decodebytes,
    "binascii.a2b_base64": binascii.a2b_base64,
}


def _as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("ascii")
    raise ShimError(f"expected bytes, got {type(value).__name__}")


def _lzma(args: list, kwargs: dict, steps: list[str], budget: _Budget) -> bytes:
    data = _as_bytes(args[0] if args else kwargs.get("data"))
    fmt = args[1] if len(args) > 1 else kwargs.get("format", lzma.FORMAT_AUTO)
    filters = args[3] if len(args) > 3 else kwargs.get("filters")
    label = {lzma.FORMAT_RAW: "RAW", lzma.FORMAT_XZ: "XZ", lzma.FORMAT_ALONE: "ALONE"}.get(fmt, "AUTO")
    steps.append(f"lzma.decompress({label})")
    if filters is not None:
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise ShimError("lzma filters must be a list of dicts")
    decomp = lzma.LZMADecompressor(format=fmt, filters=filters) if fmt == lzma.FORMAT_RAW else \
        lzma.LZMADecompressor(format=fmt)
    return _drain(lambda chunk, limit: decomp.decompress(chunk, max_length=limit), data, budget,
                  lambda: decomp.eof, lambda: decomp.needs_input)


def _capped(kind: str, data: bytes, budget: _Budget, wbits: int | None = None) -> bytes:
    """Decompress DATA with at most MAX_STAGE_BYTES of output, refusing (not allocating) beyond it."""
    if kind in {"zlib", "gzip"}:
        d = zlib.decompressobj(wbits if kind == "zlib" and wbits is not None else (zlib.MAX_WBITS | 16
                                                                                  if kind == "gzip" else 15))

        def step(chunk: bytes, limit: int) -> bytes:
            return d.decompress(d.unconsumed_tail + chunk if d.unconsumed_tail else chunk, limit)
        return _drain(step, data, budget, lambda: d.eof, lambda: not d.unconsumed_tail)
    if kind == "bz2":
        b = bz2.BZ2Decompressor()
        return _drain(lambda chunk, limit: b.decompress(chunk, max_length=limit), data, budget,
                      lambda: b.eof, lambda: b.needs_input)
    if kind == "brotli":
        return _brotli(data, budget)
    if kind == "zstandard":
        return _zstd(data, budget)
    raise ShimError(f"unknown compressor {kind}")


def _drain(step, data: bytes, budget: _Budget, is_eof, needs_input) -> bytes:
    """Call STEP(chunk, max_length) until the stream ends, never holding more than the cap."""
    out = io.BytesIO()
    chunk = data
    while True:
        limit = MAX_STAGE_BYTES + 1 - out.tell()
        piece = step(chunk, limit)
        chunk = b""
        out.write(piece)
        if out.tell() > MAX_STAGE_BYTES:
            raise Refused(f"refused: would decompress beyond {MAX_STAGE_BYTES:,} bytes")
        budget.take(len(piece))
        if is_eof():
            return out.getvalue()
        if needs_input() and not piece:
            raise ShimError("compressed stream is truncated")


def _brotli(data: bytes, budget: _Budget) -> bytes:
    import brotli  # a declared dependency, imported only when a shim uses it

    d = brotli.Decompressor()
    out = io.BytesIO()
    piece = d.process(data, output_buffer_limit=1 << 20)
    while True:
        out.write(piece)
        budget.take(len(piece))
        if out.tell() > MAX_STAGE_BYTES:
            raise Refused(f"refused: would decompress beyond {MAX_STAGE_BYTES:,} bytes")
        if d.is_finished():
            return out.getvalue()
        if d.can_accept_more_data():
            raise ShimError("brotli stream is truncated")
        piece = d.process(b"", output_buffer_limit=1 << 20)


def _zstd(data: bytes, budget: _Budget) -> bytes:
    import zstandard  # a declared dependency, imported only when a shim uses it

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        out = io.BytesIO()
        while True:
            piece = reader.read(1 << 20)
            if not piece:
                return out.getvalue()
            out.write(piece)
            budget.take(len(piece))
            if out.tell() > MAX_STAGE_BYTES:
                raise Refused(f"refused: would decompress beyond {MAX_STAGE_BYTES:,} bytes")
    except zstandard.ZstdError as exc:
        raise ShimError(f"zstd: {exc}") from None

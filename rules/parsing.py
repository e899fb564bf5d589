"""Turn submission source into an `ast.Module`, also when it uses Python 3.12-only syntax.

The harness runs on Python 3.11, whose `ast` rejects syntax that real records use: PEP 701 f-strings (nested quotes
of the same kind, backslashes or comments inside the braces) and PEP 695 type parameters / `type X = ...`. When
`ast.parse` fails we parse with libcst's native parser (which accepts 3.12), rewrite only those constructs into
3.11 code that is equivalent *for analysis*, keeping every line number, and parse the result again:

* an offending f-string becomes a call `__fstring__(part, expr, ...)` of its literal parts and expressions;
* `type X[T] = v` becomes `X = v`; the `[T]` of `def f[T]` / `class C[T]` is dropped.

Speed matters (`check` has a 0.6 s budget): f-strings are first lowered by a small stdlib scanner that understands
PEP 701 nesting (~20 ms on 60 KB); only when that is not enough (type parameters, or the scanner gets lost) do we
import libcst (~0.15 s) and parse with positions (~0.5 s on 60 KB). Pure: stdlib + libcst only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

FSTRING_CALL = "__fstring__"  # the name lowered f-strings call; rules may treat it like a JoinedStr


class SourceParseError(Exception):
    """The text is not Python we can analyse: syntax error, binary data or an undecodable encoding."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode_source(data: bytes, filename: str) -> str:
    """Bytes of a .py file -> text, honouring a PEP 263 coding cookie; binary or undecodable data raises."""
    if b"\x00" in data:
        raise SourceParseError(f"{filename}: binary file (contains NUL bytes), not Python source")
    encoding = "utf-8-sig"
    for line in data.splitlines()[:2]:  # PEP 263: the cookie is on line 1 or 2
        match = _COOKIE.match(line)
        if match:
            encoding = match.group(1).decode("ascii")
            break
    try:
        return data.decode(encoding)
    except LookupError:
        raise SourceParseError(f"{filename}: unknown source encoding {encoding!r}", 1) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        name = "UTF-8" if encoding == "utf-8-sig" else encoding
        raise SourceParseError(f"{filename}:{line}: not valid {name} text (byte 0x{data[exc.start]:02x} at offset "
                               f"{exc.start})", line) from None


def parse_python(text: str, filename: str) -> ast.Module:
    """Parse TEXT as Python 3.11, falling back to lowering 3.12-only syntax; raise SourceParseError on failure."""
    if "\x00" in text:
        raise SourceParseError(f"{filename}: source contains NUL characters")
    try:
        return ast.parse(text, filename=filename)
    except SyntaxError as first:
        error = first
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SourceParseError(f"{filename}: cannot parse ({type(exc).__name__})") from None
    for lower in (lower_fstrings, lower_312_syntax):
        lowered = lower(text)
        if lowered is None or lowered == text:
            continue
        try:
            return ast.parse(lowered, filename=filename)
        except (SyntaxError, ValueError, RecursionError):
            continue
    line = error.lineno
    raise SourceParseError(f"{filename}:{line}: syntax error: {error.msg}", line)


@dataclass
class _FString:
    """One f-string literal: its span, prefix and quote, and its pieces (literal text or an expression span)."""

    start: int
    end: int
    prefix: str
    quote: str
    pieces: list  # str (raw literal text) or tuple[int, int] (expression span)


class _Splicer:
    """Replaces offending spans in TEXT (outermost first, nested ones rendered recursively) keeping line counts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.edits: list[tuple[int, int, str, object]] = []  # (start, end, kind, payload)

    def add_fstrings(self, fstrings: list[_FString]) -> None:
        for fs in fstrings:
            if not _parses_as_expression(self.text[fs.start:fs.end]):
                self.edits.append((fs.start, fs.end, "fstring", fs))

    def render(self, start: int, end: int) -> str:
        out: list[str] = []
        cursor = start
        for e_start, e_end, kind, payload in sorted(self.edits, key=lambda e: (e[0], -e[1])):
            if e_start < cursor or e_end > end:
                continue
            out.append(self.text[cursor:e_start])
            out.append(self.lower(kind, payload, e_start, e_end))
            cursor = e_end
        out.append(self.text[cursor:end])
        return "".join(out)

    def lower(self, kind: str, payload, start: int, end: int) -> str:
        if kind == "tparams":
            # Backslash continuations keep the header's line count without a bracket to hold the newlines.
            return "\\\n" * self.text.count("\n", start, end)
        if kind == "alias":
            name, v_start, v_end = payload
            return f"{name} = " + "\\\n" * self.text.count("\n", start, v_start) + self.render(v_start, v_end)
        return self.lower_fstring(payload)

    def lower_fstring(self, fs: _FString) -> str:
        line = self.text.count("\n", 0, fs.start)
        args: list[str] = []
        for piece in fs.pieces:
            if isinstance(piece, str):
                if piece:
                    args.append(_literal_text(piece, fs.prefix, fs.quote))
                continue
            p_start, p_end = piece
            target = self.text.count("\n", 0, p_start)
            rendered = self.render(p_start, p_end)
            args.append("\n" * max(0, target - line) + "(" + rendered + ")")
            line = max(line, target) + rendered.count("\n")
        tail = "\n" * max(0, self.text.count("\n", 0, fs.end) - line)
        return f"{FSTRING_CALL}(" + ", ".join(args) + tail + ")"


def lower_fstrings(text: str) -> str | None:
    """Lower PEP 701 f-strings with a stdlib scanner; None when the scan cannot make sense of TEXT."""
    try:
        fstrings = _FStringScanner(text).scan()
    except (_Lost, IndexError, RecursionError):
        return None
    splicer = _Splicer(text)
    splicer.add_fstrings(fstrings)
    if not splicer.edits:
        return None
    return splicer.render(0, len(text))


class _Lost(Exception):
    """The scanner met something it does not understand; give up on this path."""


_PREFIXES = {"", "r", "u", "f", "b", "br", "rb", "fr", "rf"}
_QUOTES = "'\""


class _FStringScanner:
    """Finds every f-string (nested ones too) in Python 3.12 source: strings, comments and brackets only."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.found: list[_FString] = []

    def scan(self) -> list[_FString]:
        i = 0
        text = self.text
        while i < self.n:
            c = text[i]
            if c == "#":
                i = self._skip_comment(i)
            elif c in _QUOTES or c.isalpha() or c == "_":
                i = self._word_or_string(i)
            else:
                i += 1
        return self.found

    def _skip_comment(self, i: int) -> int:
        j = self.text.find("\n", i)
        return self.n if j < 0 else j

    def _word_or_string(self, i: int) -> int:
        """At an identifier or a quote: skip the identifier, or scan the string literal it prefixes."""
        j = i
        while j < self.n and (self.text[j].isalnum() or self.text[j] == "_"):
            j += 1
        if j < self.n and self.text[j] in _QUOTES and self.text[i:j].lower() in _PREFIXES:
            return self._string(i, j)
        return max(j, i + 1)

    def _string(self, i: int, q: int) -> int:
        text = self.text
        prefix = text[i:q].lower()
        quote = text[q] * 3 if text.startswith(text[q] * 3, q) else text[q]
        is_f, raw = "f" in prefix, "r" in prefix
        k = q + len(quote)
        pieces: list = []
        lit_start = k
        while True:
            if k >= self.n:
                raise _Lost("unterminated string")
            ch = text[k]
            if ch == "\\":
                if is_f and not raw and text.startswith("\\N{", k):
                    k = text.index("}", k) + 1
                else:
                    k += 2
                continue
            if ch == "\n" and len(quote) == 1:
                raise _Lost("newline in a single-quoted string")
            if text.startswith(quote, k):
                if is_f:
                    pieces.append(text[lit_start:k])
                end = k + len(quote)
                break
            if is_f and ch in "{}":
                if text.startswith(ch * 2, k):
                    k += 2
                    continue
                if ch == "}":
                    raise _Lost("single } in an f-string")
                pieces.append(text[lit_start:k])
                k = self._field(k + 1, pieces)
                lit_start = k
                continue
            k += 1
        if is_f:
            self.found.append(_FString(i, end, prefix, quote, pieces))
        return end

    def _field(self, k: int, pieces: list) -> int:
        """Scan a replacement field after its '{'; append the expression span(s); return the index after '}'."""
        text = self.text
        start, depth = k, 0
        while True:
            if k >= self.n:
                raise _Lost("unterminated replacement field")
            ch = text[k]
            if ch in _QUOTES or ch.isalpha() or ch == "_":
                k = self._word_or_string(k)
                continue
            if ch == "#":
                k = self._skip_comment(k)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]" or (ch == "}" and depth):
                depth -= 1
            elif depth == 0 and (ch == "}" or (ch == "!" and text[k + 1] != "=") or ch == ":" or
                                 (ch == "=" and text[k + 1] != "=" and text[k - 1] not in "=!<>:")):
                pieces.append((start, k))
                return self._after_expression(k, pieces)
            k += 1

    def _after_expression(self, k: int, pieces: list) -> int:
        """Past an expression: optional '=' / '!conv' / ':spec' (with nested fields), then the closing '}'."""
        text = self.text
        if text[k] == "=":
            k += 1
            while text[k] in " \t\n":
                k += 1
        if text[k] == "!":
            k += 1
            while text[k] not in ":}":
                k += 1
        if text[k] == ":":
            k += 1
            spec: list = []
            while text[k] != "}":
                if text[k] == "{":
                    k = self._field(k + 1, spec)
                    continue
                k += 1
            pieces.extend(p for p in spec if not isinstance(p, str))  # nested fields of the format spec
        if text[k] != "}":
            raise _Lost("replacement field does not end with }")
        return k + 1


def lower_312_syntax(text: str) -> str | None:
    """Lower f-strings and PEP 695 syntax using libcst positions; None when libcst rejects TEXT too."""
    import libcst as cst  # a declared dependency, imported only for 3.12-only sources
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        module = cst.parse_module(text, config=cst.PartialParserConfig(python_version="3.12"))
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    except Exception:  # noqa: BLE001 - libcst raises several types for bad input; all mean "cannot lower"
        return None
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def span(node) -> tuple[int, int]:
        rng = positions[node]
        return starts[rng.start.line - 1] + rng.start.column, starts[rng.end.line - 1] + rng.end.column

    splicer = _Splicer(text)
    fstrings: list[_FString] = []

    class Collector(cst.CSTVisitor):
        def visit_FormattedString(self, node) -> None:
            pieces: list = []
            for part in node.parts:
                if isinstance(part, cst.FormattedStringText):
                    pieces.append(part.value)
                elif isinstance(part, cst.FormattedStringExpression):
                    pieces.append(span(part.expression))
                    pieces.extend(span(s.expression) for s in part.format_spec or ()
                                  if isinstance(s, cst.FormattedStringExpression))
            fstrings.append(_FString(*span(node), node.prefix.lower(), node.quote, pieces))

        def visit_TypeAlias(self, node) -> None:
            splicer.edits.append((*span(node), "alias", (node.name.value, *span(node.value))))

        def visit_FunctionDef(self, node) -> None:
            self._type_params(node)

        def visit_ClassDef(self, node) -> None:
            self._type_params(node)

        def _type_params(self, node) -> None:
            params = getattr(node, "type_parameters", None)
            if params is not None:
                splicer.edits.append((*span(params), "tparams", None))

    module.visit(Collector())
    splicer.add_fstrings(fstrings)
    return splicer.render(0, len(text))


def _parses_as_expression(source: str) -> bool:
    try:
        ast.parse("(" + source + "\n)", mode="eval")
        return True
    except (SyntaxError, ValueError, RecursionError):
        return False


def _literal_text(raw: str, prefix: str, quote: str) -> str:
    """A one-line Python literal for an f-string's literal part (escapes decoded where possible)."""
    value = raw.replace("{{", "{").replace("}}", "}")
    try:
        decoded = ast.literal_eval(prefix.replace("f", "") + quote + value + quote)
        if isinstance(decoded, str):
            return repr(decoded)
    except (SyntaxError, ValueError):
        pass
    return repr(value)

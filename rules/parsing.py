"""Turn submission source into an `ast.Module`, also when it uses Python 3.12-only syntax.

The harness runs on Python 3.11, whose `ast` rejects syntax that real records use: PEP 701 f-strings (nested quotes
of the same kind, backslashes or comments inside the braces) and PEP 695 type parameters / `type X = ...`. When
`ast.parse` fails we parse with libcst's native parser (which accepts 3.12), rewrite only those constructs into
3.11 code that is equivalent *for analysis*, keeping every line number, and parse the result again:

* an offending f-string becomes a call `__fstring__(part, expr, ...)` of its literal parts and expressions;
* `type X[T] = v` becomes `X = v`; the `[T]` of `def f[T]` / `class C[T]` is dropped.

libcst costs ~0.15 s to import, so it is imported only on that fallback path. Pure: stdlib + libcst only.
"""

from __future__ import annotations

import ast
import io
import tokenize

FSTRING_CALL = "__fstring__"  # the name lowered f-strings call; rules may treat it like a JoinedStr


class SourceParseError(Exception):
    """The text is not Python we can analyse: syntax error, binary data or an undecodable encoding."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def decode_source(data: bytes, filename: str) -> str:
    """Bytes of a .py file -> text, honouring a PEP 263 coding cookie; binary or undecodable data raises."""
    if b"\x00" in data:
        return _raise(f"{filename}: binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return _raise(f"{filename}: {exc.msg if hasattr(exc, 'msg') else exc}")
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        where = f" (byte 0x{data[exc.start]:02x} at offset {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        line = data[: exc.start].count(b"\n") + 1 if isinstance(exc, UnicodeDecodeError) else None
        raise SourceParseError(f"{filename}: not valid {encoding} text{where}", line) from None


def _raise(message: str) -> str:
    raise SourceParseError(message)


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
    lowered = lower_312_syntax(text)
    if lowered is not None:
        try:
            return ast.parse(lowered, filename=filename)
        except (SyntaxError, ValueError, RecursionError):
            pass
    line = error.lineno
    raise SourceParseError(f"{filename}:{line}: syntax error: {error.msg}", line)


def lower_312_syntax(text: str) -> str | None:
    """Rewrite 3.12-only constructs into 3.11 code with the same line numbers; None when libcst rejects TEXT too."""
    try:
        import libcst as cst
        from libcst.metadata import MetadataWrapper, PositionProvider
    except ImportError:  # pragma: no cover - libcst is a declared dependency
        return None
    try:
        module = cst.parse_module(text, config=cst.PartialParserConfig(python_version="3.12"))
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    except Exception:  # noqa: BLE001 - libcst raises several types for bad input; all mean "cannot lower"
        return None
    return _Lowerer(text, module, positions, cst).run()


class _Lowerer:
    """Splices replacements for offending nodes into the original text, innermost edits rendered recursively."""

    def __init__(self, text: str, module, positions, cst) -> None:
        self.text = text
        self.positions = positions
        self.cst = cst
        starts = [0]
        for line in text.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        self.line_starts = starts
        self.edits: list[tuple[int, int, str, object]] = []  # (start, end, kind, node)
        self._collect(module)
        self.edits.sort(key=lambda e: (e[0], -e[1]))

    def offset(self, pos) -> int:
        return self.line_starts[pos.line - 1] + pos.column

    def span(self, node) -> tuple[int, int]:
        rng = self.positions[node]
        return self.offset(rng.start), self.offset(rng.end)

    def _collect(self, module) -> None:
        cst = self.cst
        lowerer = self

        class Collector(cst.CSTVisitor):
            def visit_FormattedString(self, node) -> None:
                start, end = lowerer.span(node)
                if not _parses_as_expression(lowerer.text[start:end]):
                    lowerer.edits.append((start, end, "fstring", node))

            def visit_TypeAlias(self, node) -> None:
                start, end = lowerer.span(node)
                lowerer.edits.append((start, end, "alias", node))

            def visit_FunctionDef(self, node) -> None:
                self._type_params(node)

            def visit_ClassDef(self, node) -> None:
                self._type_params(node)

            def _type_params(self, node) -> None:
                params = getattr(node, "type_parameters", None)
                if params is not None:
                    start, end = lowerer.span(params)
                    lowerer.edits.append((start, end, "tparams", params))

        module.visit(Collector())

    def run(self) -> str:
        return self.render(0, len(self.text))

    def render(self, start: int, end: int) -> str:
        """TEXT[start:end] with every outermost edit inside the range replaced by its lowering."""
        out: list[str] = []
        cursor = start
        for e_start, e_end, kind, node in self.edits:
            if e_start < cursor or e_end > end or e_start < start:
                continue
            out.append(self.text[cursor:e_start])
            out.append(self.lower(kind, node, e_start, e_end))
            cursor = e_end
        out.append(self.text[cursor:end])
        return "".join(out)

    def lower(self, kind: str, node, start: int, end: int) -> str:
        newlines = self.text.count("\n", start, end)
        if kind == "tparams":
            # Backslash continuations keep the header's line count without a bracket to hold the newlines.
            return "\\\n" * newlines
        if kind == "alias":
            v_start, v_end = self.span(node.value)
            gap = self.text.count("\n", start, v_start)
            return f"{node.name.value} = " + "\\\n" * gap + self.render(v_start, v_end)
        return self.lower_fstring(node, start, end)

    def lower_fstring(self, node, start: int, end: int) -> str:
        line = self.text.count("\n", 0, start)
        args: list[str] = []
        for piece in self._fstring_pieces(node):
            if isinstance(piece, str):
                args.append(_literal_text(piece, node))
                continue
            p_start, p_end = self.span(piece)
            target = self.text.count("\n", 0, p_start)
            rendered = self.render(p_start, p_end)
            args.append("\n" * max(0, target - line) + "(" + rendered + ")")
            line = max(line, target) + rendered.count("\n")
        tail = "\n" * max(0, self.text.count("\n", 0, end) - line)
        return f"{FSTRING_CALL}(" + ", ".join(args) + tail + ")"

    def _fstring_pieces(self, node) -> list:
        """Literal texts (str) and expression nodes of an f-string, format specs included, in source order."""
        cst = self.cst
        pieces: list = []
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                pieces.append(part.value)
            elif isinstance(part, cst.FormattedStringExpression):
                pieces.append(part.expression)
                for spec in part.format_spec or ():
                    if isinstance(spec, cst.FormattedStringExpression):
                        pieces.append(spec.expression)
        return pieces


def _parses_as_expression(source: str) -> bool:
    try:
        ast.parse("(" + source + "\n)", mode="eval")
        return True
    except (SyntaxError, ValueError, RecursionError):
        return False


def _literal_text(raw: str, node) -> str:
    """A one-line Python literal for an f-string's literal part (escapes decoded where possible)."""
    value = raw.replace("{{", "{").replace("}}", "}")
    prefix = node.prefix.lower().replace("f", "")
    quote = node.quote
    try:
        decoded = ast.literal_eval(prefix + quote + value + quote)
        if isinstance(decoded, str):
            return repr(decoded)
    except (SyntaxError, ValueError):
        pass
    return repr(value)

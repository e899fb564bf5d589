"""rules.parsing: 3.11 parsing with a line-preserving fallback for 3.12-only syntax, and clear failures."""

from __future__ import annotations

import ast

import pytest

from rules.parsing import SourceParseError, decode_source, lower_312_syntax, lower_fstrings, parse_python

# Each snippet ends with `marker = 1` on the line given: the lowered tree must keep it there.
PY312 = [
    ('d = {"k": 1}\ns = f"{d["k"]}"\nmarker = 1\n', 3),
    ('s = f"{"\\n".join(["a", "b"])}"\nmarker = 1\n', 2),
    ('x = 2\ns = f"{x:{x}} {f"{x!r}"}"\nmarker = 1\n', 3),
    ('s = f"""a\n{\n  "b"  # comment inside a field\n}\nc {"d"}"""\nmarker = 1\n', 6),
    ("type Vector[T] = list[\n    T]\nmarker = 1\n", 3),
    ("def first[T](items: list[T]) -> T:\n    return items[0]\nmarker = 1\n", 3),
    ("class Box[T]:\n    pass\nmarker = 1\n", 3),
]


def _marker_line(tree: ast.Module) -> int:
    return next(n.lineno for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "marker")


@pytest.mark.parametrize("source, line", PY312)
def test_312_syntax_parses_and_keeps_line_numbers(source, line):
    """Python 3.12-only syntax parses through the fallback and the statements after it keep their lines."""
    with pytest.raises(SyntaxError):
        ast.parse(source)
    assert _marker_line(parse_python(source, "t.py")) == line


@pytest.mark.parametrize("source, line", [s for s in PY312 if "f\"" in s[0]])
def test_fast_scanner_agrees_with_libcst(source, line):
    """The stdlib f-string scanner and the libcst lowering give the same statements, lines and names."""
    fast, slow = lower_fstrings(source), lower_312_syntax(source)
    assert fast is not None and slow is not None

    def shape(text):
        tree = ast.parse(text)
        names = sorted(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
        return [(n.lineno, n.end_lineno, type(n).__name__) for n in tree.body], names

    assert shape(fast) == shape(slow)


def test_lowered_fstring_keeps_its_expressions():
    """A lowered f-string becomes a __fstring__ call whose arguments include the expressions inside the braces."""
    tree = parse_python('value = f"{cfg["lr"]} and {step}"\n', "t.py")
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {"__fstring__", "cfg", "step"} <= names


@pytest.mark.parametrize("source, line", [
    ("x = 1\ndef broken(:\n    pass\n", 2),
    ("x = (\n", 1),
    ("if True:\nprint(1)\n", 2),
])
def test_syntax_error_raises_with_line(source, line):
    """Source that no Python version accepts raises SourceParseError naming the file and line."""
    with pytest.raises(SourceParseError) as info:
        parse_python(source, "bad.py")
    assert info.value.line == line and "bad.py" in info.value.message


@pytest.mark.parametrize("data, fragment", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary"),
    (b"x = '\xff\xfe'\n", "not valid utf-8"),
    (b"# -*- coding: no-such-codec -*-\nx = 1\n", "no-such-codec"),
])
def test_bad_bytes_are_rejected_clearly(data, fragment):
    """Binary or undecodable bytes raise SourceParseError with a message saying why."""
    with pytest.raises(SourceParseError) as info:
        decode_source(data, "train_gpt.py")
    assert fragment in info.value.message.lower()


def test_coding_cookie_is_honoured():
    """A PEP 263 latin-1 cookie decodes bytes that are not UTF-8, as Python itself would."""
    assert decode_source(b"# -*- coding: latin-1 -*-\nname = '\xe9'\n", "t.py").endswith("'\u00e9'\n")

"""Static reference finding for harness.submission.code: what one parsed unit loads, and the paths it names.

`References` walks a unit's imports and calls: sibling-module imports, `importlib.import_module("x")`,
`exec(open(...).read())` loaders, subprocess builds of native sources (g++/nvcc argument lists), ctypes libraries
whose source is in the folder and torch.utils.cpp_extension.load sources. Each target is a path resolved over a
small expression language: literals, `__file__`, str.replace, os.path.join/dirname, pathlib `/` and `.parent`,
f-strings with resolvable parts, and names bound to such values anywhere in the module (every binding is a
candidate). What it finds goes to the `Loader` that owns the work queue.
"""

from __future__ import annotations

import ast
import posixpath
import shlex
from typing import Any, Protocol

NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".h", ".hpp")
_BUILD_COMMANDS = {"g++", "gcc", "c++", "cc", "clang", "clang++", "nvcc", "hipcc"}
_SUBPROCESS_CALLS = {"run", "call", "check_call", "check_output", "Popen", "system", "getoutput", "getstatusoutput"}


class Loader(Protocol):
    """What the reference finder needs of the work queue over a submission's files (harness.submission.code)."""

    root: str  # the submission folder, resolved
    regular: set[str]  # folder-relative paths of its regular files
    bundle: Any  # the CodeBundle being filled: unresolved loads are appended to `bundle.problems`

    def add_python(self, rel: str, origin: str, reached: str) -> None: ...

    def add_native(self, rel: str, reached: str) -> None: ...


class NodeIndex:
    """One pass over a tree: the calls, imports and assignments the reference finder and the shim decoder need."""

    def __init__(self, tree: ast.Module) -> None:
        self.calls: list[ast.Call] = []
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.assigns: list[ast.Assign | ast.AnnAssign] = []
        stack: list[ast.AST] = [tree]
        while stack:  # faster than ast.walk, which matters on 150 KB scripts
            node = stack.pop()
            if isinstance(node, ast.Call):
                self.calls.append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                self.assigns.append(node)
            for name in node._fields:
                value = getattr(node, name, None)
                if isinstance(value, list):
                    stack.extend(v for v in value if isinstance(v, ast.AST))
                elif isinstance(value, ast.AST):
                    stack.append(value)


class References:
    """Finds what one parsed unit loads: exec(open()), imports, importlib, native builds and libraries."""

    def __init__(self, loader: Loader, rel: str, index: NodeIndex) -> None:
        self.loader = loader
        self.rel = rel
        self.index = index
        self.file = posixpath.join(loader.root, rel)
        self.bindings: dict[str, list[ast.AST]] = {}
        self.modules: dict[str, str] = {}  # local alias -> module name (os, os.path, pathlib, subprocess, ...)
        for node in index.assigns:
            if node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.bindings.setdefault(target.id, []).append(node.value)
        for node in index.imports:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def where(self, node: ast.AST, what: str) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', '?')} {what}"

    def collect(self) -> None:
        for node in sorted(self.index.imports, key=lambda n: n.lineno):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._import(alias.name, None, node)
            else:
                self._import_from(node)
        for node in sorted(self.index.calls, key=lambda n: (n.lineno, n.col_offset)):
            self._call(node)

    # --- imports -------------------------------------------------------------------------------------------
    def _module_file(self, dotted: str, base: str = "") -> str | None:
        parts = dotted.split(".")
        for stem in (posixpath.join(base, *parts) + ".py", posixpath.join(base, *parts, "__init__.py")):
            stem = posixpath.normpath(stem)
            if stem in self.loader.regular:
                return stem
        return None

    def _import(self, dotted: str, names: list[str] | None, node: ast.AST, base: str | None = None) -> None:
        bases = [base] if base is not None else list(dict.fromkeys([posixpath.dirname(self.rel), ""]))
        for folder in bases:
            parts = dotted.split(".") if dotted else []
            found = False
            # `import a.b.c` runs a/__init__.py, a/b/__init__.py and a/b/c.py.
            for i in range(1, len(parts) + 1):
                hit = self._module_file(".".join(parts[:i]), folder)
                if hit:
                    found = True
                    self.loader.add_python(hit, "import", self.where(node, f"import {'.'.join(parts[:i])}"))
            for name in names or ():
                sub_hit = self._module_file(".".join(parts + [name]), folder)
                if sub_hit:
                    found = True
                    self.loader.add_python(sub_hit, "import", self.where(node, f"from {dotted} import {name}"))
            if found:
                return

    def _import_from(self, node: ast.ImportFrom) -> None:
        names = [a.name for a in node.names if a.name != "*"]
        if node.level:
            base = posixpath.dirname(self.rel)
            for _ in range(node.level - 1):
                base = posixpath.dirname(base)
            self._import(node.module or "", names, node, base=base)
        elif node.module:
            self._import(node.module, names, node)

    # --- calls ---------------------------------------------------------------------------------------------
    def _qualname(self, func: ast.AST) -> str:
        if isinstance(func, ast.Name):
            return self.modules.get(func.id, func.id)
        if isinstance(func, ast.Attribute):
            return f"{self._qualname(func.value)}.{func.attr}"
        if isinstance(func, ast.Call):
            return self._qualname(func.func) + "()"
        return "?"

    def _call(self, node: ast.Call) -> None:
        name = self._qualname(node.func)
        short = name.rsplit(".", 1)[-1]
        if name in {"exec", "eval", "compile"} and node.args:
            self._exec_target(node)
        elif name in {"importlib.import_module", "__import__"} and node.args:
            for value in self.values(node.args[0]):
                if isinstance(value, str):
                    self._import(value, None, node)
        elif name.startswith(("subprocess.", "os.")) and short in _SUBPROCESS_CALLS and node.args:
            self._build_command(node)
        elif short in {"CDLL", "LoadLibrary", "PyDLL", "cdll", "load_library"} and node.args:
            self._library(node)
        elif short == "load" and "cpp_extension" in name or short == "load" and _has_kw(node, "sources"):
            for kw in node.keywords:
                if kw.arg in {"sources", "extra_include_paths"} or kw.arg is None:
                    self._native_paths(kw.value, node, "cpp_extension.load sources")
            if len(node.args) > 1:
                self._native_paths(node.args[1], node, "cpp_extension.load sources")

    def _exec_target(self, node: ast.Call) -> None:
        """exec(open(P).read()), exec(Path(P).read_text()), exec(compile(open(P).read(), ...))."""
        arg = node.args[0]
        if isinstance(arg, ast.Call) and self._qualname(arg.func) == "compile" and arg.args:
            arg = arg.args[0]
        path_node = None
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute):
            inner = arg.func.value
            if arg.func.attr == "read" and isinstance(inner, ast.Call) and self._qualname(inner.func) in {
                    "open", "io.open", "codecs.open"} and inner.args:
                path_node = inner.args[0]
            elif arg.func.attr in {"read_text", "read_bytes"}:
                path_node = inner
        if path_node is None:
            return
        candidates = [v for v in self.values(path_node) if isinstance(v, (str, _PathValue))]
        resolved = [rel for rel in (self.to_relative(v) for v in candidates) if rel]
        if resolved:
            for rel in resolved:
                self.loader.add_python(rel, "exec-open", self.where(node, "exec(open(...).read())"))
        else:
            shown = ", ".join(str(v) for v in candidates[:3]) or ast.unparse(path_node)[:80]
            self.loader.bundle.problems.append(
                f"{self.rel}:{node.lineno}: exec(open(...)) target not found in the folder: {shown}")

    def _build_command(self, node: ast.Call) -> None:
        words: list[object] = []
        for value in self.values(node.args[0]):
            if isinstance(value, list):
                words.extend(value)
            elif isinstance(value, str):
                try:
                    words.extend(shlex.split(value))
                except ValueError:
                    words.append(value)
        if not any(isinstance(w, str) and posixpath.basename(w) in _BUILD_COMMANDS for w in words):
            return
        for word in words:
            rel = self.to_relative(word) if isinstance(word, (str, _PathValue)) else None
            if rel and rel.endswith(NATIVE_SUFFIXES):
                self.loader.add_native(rel, self.where(node, "compiled by a subprocess build"))

    def _library(self, node: ast.Call) -> None:
        """ctypes.CDLL(lib): count the library's source when one with the same stem is in the folder."""
        for value in self.values(node.args[0]):
            if not isinstance(value, (str, _PathValue)):
                continue
            path = str(value)
            folder, stem = posixpath.dirname(path), posixpath.basename(path).split(".")[0]
            for name in {stem, stem[3:] if stem.startswith("lib") else stem}:
                for suffix in NATIVE_SUFFIXES[:5]:
                    rel = self.to_relative(posixpath.join(folder, name + suffix))
                    if rel:
                        self.loader.add_native(rel, self.where(node, "source of a ctypes library"))

    def _native_paths(self, node: ast.AST, call: ast.Call, what: str) -> None:
        for value in self.values(node):
            for item in value if isinstance(value, list) else [value]:
                rel = self.to_relative(item) if isinstance(item, (str, _PathValue)) else None
                if rel:
                    self.loader.add_native(rel, self.where(call, what))

    # --- path evaluation -----------------------------------------------------------------------------------
    def to_relative(self, value: object) -> str | None:
        """A candidate path -> folder-relative path of a regular file inside the folder, else None."""
        path = str(value)
        if not path or "\x00" in path:
            return None
        if not posixpath.isabs(path):
            path = posixpath.join(self.loader.root, path)  # the run's working directory is the folder
        path = posixpath.normpath(path)
        if not path.startswith(self.loader.root + "/"):
            return None
        rel = path[len(self.loader.root) + 1:]
        return rel if rel in self.loader.regular else None

    def values(self, node: ast.AST, depth: int = 0, seen: frozenset = frozenset()) -> list[object]:
        """Every value NODE may have (one per binding combination), at most a few dozen; [] when unknown."""
        try:
            return _dedupe(self._values(node, depth, seen))[:32]
        except RecursionError:
            return []

    def _values(self, node: ast.AST, depth: int, seen: frozenset) -> list[object]:
        if depth > 25:
            return []
        ev = lambda n: self.values(n, depth + 1, seen)  # noqa: E731
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
            return [node.value]
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return [self.file]
            if node.id in seen:
                return []
            out: list[object] = []
            for bound in self.bindings.get(node.id, []):
                out.extend(self.values(bound, depth + 1, seen | {node.id}))
            return out
        if isinstance(node, (ast.List, ast.Tuple)):
            combos: list[list[object]] = [[]]
            for elt in node.elts:
                options = ev(elt.value if isinstance(elt, ast.Starred) else elt) or ["?"]
                combos = [c + ([*o] if isinstance(elt, ast.Starred) and isinstance(o, list) else [o])
                          for c in combos for o in options[:4]][:16]
            return combos
        if isinstance(node, ast.JoinedStr):
            parts: list[list[str]] = [[""]]
            for value in node.values:
                if isinstance(value, ast.Constant):
                    options = [str(value.value)]
                else:
                    options = [str(v) for v in ev(value.value)]
                if not options:
                    return []
                parts = [[p[0] + o] for p in parts for o in options][:16]
            return [p[0] for p in parts]
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            out = []
            for a in left:
                for b in right:
                    if isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
                        out.append(a + b)
                    elif isinstance(node.op, ast.Div) and isinstance(a, (str, _PathValue)) and \
                            isinstance(b, (str, _PathValue)) and \
                            (isinstance(a, _PathValue) or isinstance(b, _PathValue)):
                        out.append(_PathValue(posixpath.join(str(a), str(b))))
            return out
        if isinstance(node, ast.Attribute):
            if node.attr in {"parent", "stem", "name"}:
                out = []
                for base in ev(node.value):
                    if isinstance(base, _PathValue):
                        out.append(_PathValue(posixpath.dirname(str(base))) if node.attr == "parent"
                                   else posixpath.basename(str(base)))
                return out
            return []
        if isinstance(node, ast.Call):
            return self._call_values(node, ev)
        if isinstance(node, ast.IfExp):
            return ev(node.body) + ev(node.orelse)
        if isinstance(node, ast.BoolOp):
            return [v for value in node.values for v in ev(value)]
        return []

    def _call_values(self, node: ast.Call, ev) -> list[object]:
        name = self._qualname(node.func)
        args = node.args
        if name in {"str", "os.fspath", "os.path.abspath", "os.path.realpath", "os.path.normpath",
                    "os.path.expanduser"} and args:
            return [str(v) if isinstance(v, _PathValue) else v for v in ev(args[0])]
        if name in {"pathlib.Path", "Path", "pathlib.PurePath", "pathlib.PosixPath"}:
            if not args:
                return [_PathValue(".")]
            combos = [[]]
            for a in args:
                combos = [c + [v] for c in combos for v in ev(a) if isinstance(v, (str, _PathValue))][:16]
            return [_PathValue(posixpath.join(*map(str, c))) for c in combos if c]
        if name == "os.path.join" and args:
            combos = [[]]
            for a in args:
                combos = [c + [str(v)] for c in combos for v in ev(a) if isinstance(v, (str, _PathValue))][:16]
            return [posixpath.join(*c) for c in combos if c]
        if name == "os.path.dirname" and args:
            return [posixpath.dirname(str(v)) for v in ev(args[0]) if isinstance(v, (str, _PathValue))]
        if name in {"os.getcwd", "pathlib.Path.cwd", "Path.cwd"}:
            return [_PathValue(self.loader.root) if "Path" in name else self.loader.root]
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            bases = ev(node.func.value)
            out: list[object] = []
            for base in bases:
                if method in {"resolve", "absolute", "expanduser"} and isinstance(base, _PathValue):
                    out.append(base)
                elif method == "as_posix" and isinstance(base, _PathValue):
                    out.append(str(base))
                elif method in {"with_name", "with_suffix", "joinpath"} and isinstance(base, _PathValue) and args:
                    for arg in ev(args[0]):
                        if not isinstance(arg, str):
                            continue
                        p = str(base)
                        if method == "with_name":
                            out.append(_PathValue(posixpath.join(posixpath.dirname(p), arg)))
                        elif method == "with_suffix":
                            out.append(_PathValue(posixpath.splitext(p)[0] + arg))
                        else:
                            out.append(_PathValue(posixpath.join(p, arg)))
                elif method == "replace" and isinstance(base, str) and len(args) >= 2:
                    for old in ev(args[0]):
                        for new in ev(args[1]):
                            if isinstance(old, str) and isinstance(new, str):
                                out.append(base.replace(old, new))
                elif method in {"strip", "rstrip", "lstrip", "lower"} and isinstance(base, str) and not args:
                    out.append(getattr(base, method)())
                elif method == "format" and isinstance(base, str):
                    try:
                        out.append(base.format(*[ev(a)[0] for a in args]))
                    except (IndexError, KeyError, ValueError):
                        pass
            return out
        return []


class _PathValue:
    """A pathlib.Path seen statically: a string that supports `/` and `.parent`."""

    def __init__(self, path: str) -> None:
        self.path = posixpath.normpath(path) if path else "."

    def __str__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PathValue) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("path", self.path))


def _has_kw(node: ast.Call, name: str) -> bool:
    return any(kw.arg == name for kw in node.keywords)


def _dedupe(values: list[object]) -> list[object]:
    out: list[object] = []
    for value in values:
        if isinstance(value, list):
            if value not in out:
                out.append(value)
        elif all(not (type(v) is type(value) and v == value) for v in out):
            out.append(value)
    return out

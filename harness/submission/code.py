"""Every piece of code a submission runs, unwrapped, with the bytes each shipped file costs.

Starting from the entry script we follow, statically and without executing anything:
self-extracting shims (harness.submission.shim), `exec(open(...).read())` loaders, imports of sibling modules,
`importlib.import_module("x")`, and native sources compiled at run time (g++/nvcc argument lists, ctypes.CDLL of a
library whose source is in the folder, torch.utils.cpp_extension.load sources). This module holds the bundle and
the work queue over files; finding what one unit loads, and resolving the paths it names over a small expression
language, is harness.submission.code_refs.
"""

from __future__ import annotations

import ast
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.submission.code_refs import NodeIndex, References
from harness.submission.folder import Submission
from harness.submission.shim import decode_shim
from rules.parsing import SourceParseError, decode_source, parse_python

MAX_UNITS = 200  # a folder importing more sibling modules than this is not a submission; stop following


@dataclass(frozen=True)
class CodeUnit:
    """One Python source to analyse: its folder-relative path, its text and how it was reached."""

    path: str  # relative to the submission folder; for decoded code, the file that carries the shim
    text: str
    origin: str  # "shipped" | "decoded" | "exec-open" | "import"
    tree: ast.Module | None = field(default=None, compare=False, repr=False)  # parsed once, reused by rules


@dataclass
class CodeBundle:
    """What runs: the entry script, every counted file with its bytes, the units to analyse, problems."""

    entry: str | None = None  # relative path of the entry script
    shipped_bytes: int = 0  # size of the entry script as shipped
    counted_files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes, every file whose code runs
    units: list[CodeUnit] = field(default_factory=list)
    native_sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reached_by: dict[str, str] = field(default_factory=dict)  # relative path -> "train_gpt.py:12 import ngram_tilt"
    shim_layers: list = field(default_factory=list)  # harness.submission.shim.Layer of every decoded shim

    @property
    def code_bytes(self) -> int:
        """All counted files as shipped."""
        return sum(self.counted_files.values())

    @property
    def extra_files(self) -> dict[str, int]:
        """Counted files other than the entry script (siblings, exec targets, native sources)."""
        return {p: n for p, n in self.counted_files.items() if p != self.entry}


def load_code(sub: Submission) -> CodeBundle:
    """Collect every piece of code SUB runs, starting at its entry script; problems are recorded, never raised."""
    bundle = CodeBundle()
    if sub.script is None:
        bundle.problems.append("no train_gpt.py: there is no entry script to analyse")
        return bundle
    entry = _relative(sub, sub.script)
    bundle.entry = entry
    loader = _Loader(sub, bundle)
    loader.add_python(entry, "shipped", reached="entry script")
    bundle.shipped_bytes = bundle.counted_files.get(entry, 0)
    loader.run()
    return bundle


def _relative(sub: Submission, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(sub.root.resolve()).as_posix()
    except ValueError:
        return Path(path).name


class _Loader:
    """Work queue over files: read, parse, decode shims, find what each unit loads."""

    def __init__(self, sub: Submission, bundle: CodeBundle) -> None:
        self.sub = sub
        self.bundle = bundle
        self.root = str(sub.root.resolve())
        self.regular = {f.as_posix() for f in sub.files}
        self.queue: list[tuple[str, str, str]] = []  # (relative path, origin, text)

    def _count(self, rel: str, reached: str) -> bytes | None:
        """Read a file whose code runs and count its bytes; None when it was counted already or is unreadable."""
        if rel in self.bundle.counted_files:
            return None
        data = self._read(rel)
        if data is None:
            return None
        self.bundle.counted_files[rel] = len(data)
        self.bundle.reached_by[rel] = reached
        return data

    def add_python(self, rel: str, origin: str, reached: str) -> None:
        data = self._count(rel, reached)
        if data is None:
            return
        try:
            text = decode_source(data, rel)
        except SourceParseError as exc:
            self.bundle.problems.append(exc.message)
            return
        self.queue.append((rel, origin, text))

    def add_native(self, rel: str, reached: str) -> None:
        data = self._count(rel, reached)
        if data is None:
            return
        self.bundle.native_sources.append(rel)
        # Local headers a compiled source includes run too.
        for match in re.finditer(rb'#\s*include\s*"([^"\n]+)"', data):
            included = match.group(1).decode("utf-8", "replace")
            header = posixpath.normpath(posixpath.join(posixpath.dirname(rel), included))
            if header in self.regular:
                self.add_native(header, f"{rel}: #include")

    def _read(self, rel: str) -> bytes | None:
        if rel not in self.regular:
            return None
        try:
            return (self.sub.root / rel).read_bytes()
        except OSError as exc:
            self.bundle.problems.append(f"{rel}: cannot read ({exc.strerror or exc})")
            return None

    def run(self) -> None:
        while self.queue:
            if len(self.bundle.units) >= MAX_UNITS:
                self.bundle.problems.append(f"more than {MAX_UNITS} code units; stopped following imports")
                return
            rel, origin, text = self.queue.pop(0)
            self._analyse(rel, origin, text)

    def _analyse(self, rel: str, origin: str, text: str) -> None:
        try:
            tree = parse_python(text, rel)
        except SourceParseError as exc:
            self.bundle.problems.append(f"{exc.message}")
            self.bundle.units.append(CodeUnit(rel, text, origin))
            return
        self.bundle.units.append(CodeUnit(rel, text, origin, tree))
        index = NodeIndex(tree)
        decoded = decode_shim(text, rel, tree, index.calls)
        self.bundle.problems.extend(decoded.problems)
        self.bundle.shim_layers.extend(decoded.layers)
        indexes = [index]
        for depth, payload in decoded.decoded:
            try:
                inner = parse_python(payload, rel)
            except SourceParseError as exc:
                self.bundle.problems.append(f"decoded layer {depth} of {rel}: {exc.message}")
                self.bundle.units.append(CodeUnit(rel, payload, "decoded"))
                continue
            self.bundle.units.append(CodeUnit(rel, payload, "decoded", inner))
            indexes.append(NodeIndex(inner))
        for unit_index in indexes:
            References(self, rel, unit_index).collect()

"""harness.submission.code: every file whose code runs is found statically and counted at its shipped size."""

from __future__ import annotations

import pytest

from harness.submission.code import load_code

from .conftest import wrap

SIBLING = "def helper():\n    return 1\n"


@pytest.mark.parametrize("stub", [
    'exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())',
    'import os\nexec(open(os.path.join(os.path.dirname(__file__), "train_gpt_decode.py")).read())',
    'from pathlib import Path\nexec((Path(__file__).parent / "train_gpt_decode.py").read_text())',
    'exec(compile(open("train_gpt_decode.py").read(), "train_gpt_decode.py", "exec"))',
    'NAME = "decode"\nexec(open(f"train_gpt_{NAME}.py").read())',
])
def test_exec_open_stub_counts_its_target(submission, stub):
    """An exec(open(...).read()) loader brings its target in as counted code with origin exec-open."""
    sub = submission({"train_gpt.py": stub + "\n", "train_gpt_decode.py": SIBLING})
    code = load_code(sub)
    assert code.counted_files == {"train_gpt.py": len(stub) + 1, "train_gpt_decode.py": len(SIBLING)}
    assert [u.origin for u in code.units] == ["shipped", "exec-open"]
    assert code.shipped_bytes == len(stub) + 1 and not code.problems


def test_missing_exec_target_is_a_problem(submission):
    """A loader whose target is not in the folder gives a problem naming the line."""
    code = load_code(submission({"train_gpt.py": 'exec(open("gone.py").read())\n'}))
    assert any("train_gpt.py:1" in p and "not found" in p for p in code.problems)


@pytest.mark.parametrize("script, files, expected", [
    ("import helper\n", {"helper.py": SIBLING}, {"helper.py"}),
    ("from pkg.mod import helper\n", {"pkg/__init__.py": "", "pkg/mod.py": SIBLING},
     {"pkg/__init__.py", "pkg/mod.py"}),
    ("import importlib\nm = importlib.import_module('helper')\n", {"helper.py": SIBLING}, {"helper.py"}),
    ("import torch\nimport numpy as np\n", {"notes.py": SIBLING}, set()),
])
def test_imported_siblings_are_counted(submission, script, files, expected):
    """Imports that resolve to files in the folder are counted; third-party imports and unused files are not."""
    code = load_code(submission({"train_gpt.py": script, **files}))
    assert set(code.extra_files) == expected


NATIVE_LOADER = '''\
import ctypes, subprocess
from pathlib import Path
_HERE = Path(__file__).resolve().parent
if (_HERE / "ngram" / "kernel.cpp").exists():
    _DIR = _HERE / "ngram"
else:
    _DIR = _HERE
_SRC = _DIR / "kernel.cpp"
_LIB = _DIR / "libkernel.so"

def build():
    subprocess.run(["g++", "-O3", "-shared", str(_SRC), "-o", str(_LIB)], check=True)
    return ctypes.CDLL(str(_LIB))
'''


def test_native_sources_through_an_imported_module(submission):
    """A shim imports a sibling that compiles a C++ file with g++: all three files are counted, headers too."""
    sub = submission({
        "train_gpt.py": wrap("import tilt\ntilt.build()\n", ["lzma_raw", "b85"]),
        "tilt.py": NATIVE_LOADER,
        "ngram/kernel.cpp": '#include "kernel.h"\nint f() { return 1; }\n',
        "ngram/kernel.h": "int f();\n",
        "ngram/unused.cpp": "int g();\n",
    })
    code = load_code(sub)
    assert set(code.extra_files) == {"tilt.py", "ngram/kernel.cpp", "ngram/kernel.h"}
    assert code.native_sources == ["ngram/kernel.cpp", "ngram/kernel.h"]
    assert [u.origin for u in code.units] == ["shipped", "decoded", "import"]


@pytest.mark.parametrize("script, files, expected", [
    ('import ctypes\nlib = ctypes.CDLL("./libfast.so")\n', {"fast.c": "int f;\n"}, {"fast.c"}),
    ('from torch.utils.cpp_extension import load\nm = load(name="k", sources=["k.cpp", "k.cu"])\n',
     {"k.cpp": "//\n", "k.cu": "//\n"}, {"k.cpp", "k.cu"}),
    ('import os\nos.system("nvcc -o k k.cu")\n', {"k.cu": "//\n"}, {"k.cu"}),
])
def test_native_sources_by_other_routes(submission, script, files, expected):
    """ctypes.CDLL of a library built from a folder source, cpp_extension.load and os.system builds count sources."""
    assert set(load_code(submission({"train_gpt.py": script, **files})).native_sources) == expected


@pytest.mark.parametrize("files, fragment", [
    ({"train_gpt.py": b"\x7fELF\x00\x00binary"}, "binary"),
    ({"train_gpt.py": b"x = '\xff'\n"}, "not valid utf-8"),
    ({"train_gpt.py": "def broken(:\n    pass\n"}, "syntax error"),
    ({"README.md": "no script\n"}, "no train_gpt.py"),
    ({"train_gpt.py": "import zlib\nexec(zlib.decompress(b'garbage'))\n"}, "could not decode"),
])
def test_bad_scripts_become_problems(submission, files, fragment):
    """Binary, non-UTF-8, broken, missing or undecodable scripts are reported as problems, never raised."""
    code = load_code(submission(files))
    assert any(fragment in p.lower() for p in code.problems)


def test_bad_script_bytes_are_still_counted(submission):
    """A script that cannot be analysed still costs its shipped bytes."""
    code = load_code(submission({"train_gpt.py": b"\x00\x01\x02"}))
    assert code.counted_files == {"train_gpt.py": 3} and code.units == []


def test_python_312_script_is_analysed(submission):
    """A script using 3.12-only f-strings yields a parsed unit with the original line numbers."""
    code = load_code(submission({"train_gpt.py": 'd = {"a": 1}\nprint(f"{d["a"]}")\nimport helper\n',
                                 "helper.py": SIBLING}))
    assert not code.problems and code.units[0].tree is not None
    assert "helper.py" in code.extra_files


def test_import_cycles_terminate(submission):
    """Two siblings importing each other are each counted once."""
    code = load_code(submission({"train_gpt.py": "import a\n", "a.py": "import b\n", "b.py": "import a\n"}))
    assert set(code.extra_files) == {"a.py", "b.py"} and len(code.units) == 3

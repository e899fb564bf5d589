"""Running the script for the probe: the work folder, the variants' plans, the sandboxed launcher.

Owns Workspace, the copy of the script's folder, the tiny configuration each variant runs with, running a plan of
variants under harness/run/inject/launch.py, choosing an interpreter that parses the script, and the one line that
says why a run stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.run.probe_data import VOCAB, Dataset

INJECT_DIR = Path(__file__).resolve().parent / "inject"

MAX_COPY_BYTES = 50_000_000  # the script's folder is copied to the work folder; larger files are left out

# The tiny configuration, through the environment variables the challenge's scripts read.
TINY_ENV = {
    "VOCAB_SIZE": str(VOCAB), "TRAIN_SEQ_LEN": "32", "EVAL_SEQ_LEN": "32", "EVAL_STRIDE": "16",
    "ITERATIONS": "4", "WARMUP_STEPS": "0", "WARMDOWN_ITERS": "0", "TRAIN_BATCH_TOKENS": "512",
    "VAL_BATCH_SIZE": "512", "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1", "MAX_WALLCLOCK_SECONDS": "120",
    "NUM_LAYERS": "1", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "MLP_MULT": "2",
    "TTT_CHUNK_TOKENS": "8192", "TTT_BATCH_SEQS": "32", "EVAL_BATCH": "64",
    "TTT_EPOCHS": "2",  # two, so a multi-epoch adapt-and-rescore loop still shows; more only costs time
    "DEVICE": "cpu", "COMPILE": "0", "PRESET": "cpu-smoke", "ACCUM_BASE": "1", "RUN_ID": "probe", "SEED": "1337",
}


@dataclass
class Workspace:
    root: Path
    script: Path  # the copy that runs
    sys_path: list[str]
    display: str  # the script as findings name it, relative to the submission folder
    cpu_compat: bool = False  # the plan enables harness/run/inject/cpu_compat.py
    python: str = sys.executable  # the interpreter that runs the launcher (one that can parse the script)


def copy_script_folder(script: Path, dest: Path) -> tuple[Path, list[str]]:
    """Copy the script's folder (files up to MAX_COPY_BYTES) so nothing the run writes lands in the user's folder.

    When the folder is a package (has __init__.py), its parent goes on sys.path too, as `python -m` would."""
    src = script.parent

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {"__pycache__", ".git", "logs"}
        return {n for n in names if n in skip or (os.path.isfile(os.path.join(folder, n))
                                                   and os.path.getsize(os.path.join(folder, n)) > MAX_COPY_BYTES)}

    target = dest / src.name
    shutil.copytree(src, target, ignore=ignore, symlinks=True)
    sys_path = [str(target)]
    if (src / "__init__.py").exists():
        sys_path.append(str(dest))
    return target / script.name, sys_path


def variant(ds: Dataset, work: Path, name: str, val: np.ndarray) -> dict:
    data_dir = ds.variant_dir(name, val)
    cwd = work / "runs" / name
    cwd.mkdir(parents=True, exist_ok=True)
    chunk = max(256, (len(ds.val) - 1) // 8 // 256 * 256)  # eight TTT chunks, a multiple of every stride
    env = dict(TINY_ENV, DATA_PATH=str(data_dir), DATA_DIR=str(data_dir.parent.parent) + os.sep,
               TOKENIZER_PATH=str(ds.tokenizer), TTT_CHUNK_TOKENS=str(chunk))
    return {"name": name, "env": env, "cwd": str(cwd), "trace": str(cwd / "trace.npz"), "log": str(cwd / "out.log")}


def run_plan(ws: Workspace, variants: list[dict], timeout: float, tag: str) -> tuple[dict, str | None]:
    """Run the variants in one sandboxed process; (name -> {"exit", "seconds"}, why it was stopped or None)."""
    from harness.run import sandbox

    plan = {"script": str(ws.script), "sys_path": ws.sys_path, "inject_dir": str(INJECT_DIR),
            "variants": variants, "results": str(ws.root / f"results_{tag}.json"), "cpu_compat": ws.cpu_compat,
            "variant_timeout_s": max(5.0, timeout / 2)}
    plan_path = ws.root / f"plan_{tag}.json"
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ws.root), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "TORCHDYNAMO_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    spec = sandbox.SandboxSpec(argv=[ws.python, str(INJECT_DIR / "launch.py"), str(plan_path)],
                               cwd=ws.root, env=env)
    start = time.monotonic()
    result = sandbox.run_sandboxed(spec, on_line=lambda _t, _line: None,
                                   deadline=lambda now: "timeout" if now - start > timeout else None)
    results_path = Path(plan["results"])
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    stopped = None
    if result.killed_reason:
        stopped = f"stopped after {timeout:.0f} s ({result.killed_reason})"
    elif result.returncode not in (0, None) and not results:
        stopped = f"the probe launcher exited with status {result.returncode}"
    return results, stopped


def _python_candidates() -> list[str]:
    """Python 3.12+ interpreters on this machine (PATH, then pyenv's versions), newest first, no duplicates."""
    import glob

    found = [shutil.which(f"python3.{minor}") for minor in range(20, 11, -1)]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(os.path.join(root, "versions", "3.1[2-9]*", "bin", "python")), reverse=True)
    out, seen = [], set()
    for path in found:
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            out.append(path)
    return out


def interpreter_problem(ws: Workspace) -> str | None:
    """None when ws.python can parse the script (and its decoded payloads); else switch ws.python to a newer
    interpreter that parses it and imports torch, or say why the script cannot run here."""
    import subprocess

    from harness.submission.shim import decode_shim

    text = ws.script.read_text(encoding="utf-8", errors="replace")
    texts = [text]
    try:
        texts += [t for _, t in decode_shim(text, ws.script.name).decoded]
    except Exception:  # noqa: BLE001 - an undecodable shim is judged by running it
        pass
    error = None
    for i, t in enumerate(texts):
        try:
            compile(t, str(ws.script), "exec", dont_inherit=True)
        except SyntaxError as exc:
            error = f"SyntaxError at {'decoded ' if i else ''}line {exc.lineno}: {exc.msg}"
            break
        except (ValueError, OverflowError):
            pass
    if error is None:
        return None
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    parses = []
    for cand in _python_candidates():
        check = "import sys\nfor p in sys.argv[1:]: compile(open(p, encoding='utf-8').read(), p, 'exec')"
        paths = []
        for i, t in enumerate(texts):
            p = ws.root / f"syntax_check_{i}.py"
            p.write_text(t, encoding="utf-8")
            paths.append(str(p))
        try:
            if subprocess.run([cand, "-c", check, *paths], capture_output=True, timeout=60).returncode != 0:
                continue
            parses.append(cand)
            if subprocess.run([cand, "-c", "import torch, numpy, sentencepiece"], capture_output=True,
                              timeout=120).returncode == 0:
                ws.python = cand
                return None
        except (OSError, subprocess.TimeoutExpired):
            continue
    if parses:
        return (f"the script needs a newer Python than {this} ({error}); it parses under {parses[0]}, but no such "
                "interpreter here has torch, numpy and sentencepiece to run it")
    return f"the script does not parse under Python {this} ({error}) and no newer interpreter here parses it"


def crash_reason(lines: list[str], exit_code: int | None) -> str:
    """One line saying why the script stopped: its last exception line, else its last output line."""
    for line in reversed(lines):
        if re.match(r"^\s*([\w.]+(Error|Exception|Interrupt)|SystemExit|AssertionError)\b", line) or \
                line.startswith("error:"):
            return line.strip()[:300]
    tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    if exit_code is not None and exit_code < 0:
        return f"killed by signal {-exit_code}" + (f" after: {tail[:200]}" if tail else "")
    return tail[:300] or f"exit status {exit_code} with no output"
